"""Every chapter notebook executes headlessly, with its widget state stored.

Each notebook in ``notebooks/`` is run top to bottom by nbclient in a fresh
kernel, as the book's build runs it; any error fails its test.  The time each
took is printed (``-s`` or the summary), and all of them together must stay
under two minutes.  The notebooks must also be up to date with their sources
in ``notebooks/src``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbclient
import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
BUDGET = 120.0
TIMES: dict[str, float] = {}



def test_there_are_chapters():
    names = {p.stem.split("_", 1)[1] for p in NOTEBOOKS}
    assert {"launcher", "drivers", "host", "switcher", "virtio"} <= names


def test_notebooks_match_their_sources():
    sys.path.insert(0, str(ROOT / "notebooks"))
    try:
        import make_notebooks
    finally:
        sys.path.pop(0)
    assert make_notebooks.build(check=True) == [], "run: python notebooks/make_notebooks.py"


def execute(path: Path):
    """Run one notebook in a fresh kernel, timing it; returns the executed notebook."""
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     store_widget_state=True,
                                     resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()          # raises CellExecutionError on the first failing cell
    TIMES[path.stem] = took = time.perf_counter() - start
    print(f"{path.name}: {took:.1f} s")
    return nb


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path: Path):
    nb = execute(path)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    # The views show values, not placeholders; the live ones left their state.
    html = "".join(o["data"].get("text/html", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []) if "data" in o)
    assert 'class="lgs"' in html and "cannot show this now" not in html
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    assert state.get("state"), "no widget state stored"


def test_all_notebooks_within_budget():
    for path in NOTEBOOKS:      # when only some ran (a -k selection), time the rest too
        if path.stem not in TIMES:
            execute(path)
    total = sum(TIMES.values())
    report = ", ".join(f"{k} {v:.1f}s" for k, v in sorted(TIMES.items()))
    print(f"notebooks: {total:.1f} s in all ({report})")
    assert total < BUDGET, f"{total:.1f} s > {BUDGET} s: {report}"
