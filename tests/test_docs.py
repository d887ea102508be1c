"""The documents a clone starts from: the design map and the README's examples.

``docs/DESIGN.md`` must name every module of the package, so that a module
added without redrawing the map fails here; the README's ``make run``
examples must run on a fresh clone (they once named a ``vmlinux`` nobody
has).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DESIGN = ROOT / "docs" / "DESIGN.md"
README = ROOT / "README.md"


def test_the_design_names_every_module_and_package():
    text = DESIGN.read_text()
    package = ROOT / "lguestsim"
    missing = [p.relative_to(ROOT).as_posix() for p in sorted(package.rglob("*.py"))
               if p.name != "__init__.py" and p.name not in text]
    missing += [d.relative_to(ROOT).as_posix() for d in sorted(package.iterdir())
                if d.is_dir() and (d / "__init__.py").exists() and f"{d.name}/" not in text]
    assert not missing, f"docs/DESIGN.md does not mention {missing}"


def test_the_readme_points_to_the_design_in_the_repository():
    text = README.read_text()
    assert "docs/DESIGN.md" in text and "shared notes" not in text


EXAMPLES = sorted(set(re.findall(r"make run ARGS='([^']*)'", README.read_text())))


def test_the_readme_has_run_examples():
    assert any("shell" in args for args in EXAMPLES), EXAMPLES


@pytest.mark.parametrize("args", EXAMPLES)
def test_the_readmes_run_examples_work_on_a_clone(args, tmp_path):
    argv = [a.replace("/tmp/net", str(tmp_path / "net")) for a in shlex.split(args)]
    proc = subprocess.run([sys.executable, "-m", "lguestsim", *argv], cwd=ROOT,
                          input=b"help\nquit\n", capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    if "shell" in argv:
        assert b"guest> help\n  help " in proc.stdout
