"""Figures a test measures and CI's log should show (the live book's size and
times, for instance).

Under pytest-xdist a worker's prints are swallowed, so `figure()` prints the
line and also appends it to `test-artifacts/figures.txt`; the controller
(tests/conftest.py) empties that file when the run starts and prints it in
the summary at the end.
"""

from __future__ import annotations

from pathlib import Path

FILE = Path(__file__).resolve().parent.parent / "test-artifacts" / "figures.txt"


def figure(line: str) -> None:
    print(line)
    FILE.parent.mkdir(exist_ok=True)
    with FILE.open("a") as f:
        f.write(line.rstrip("\n") + "\n")
