"""The documents a clone starts from: the design map and the README's examples.

``docs/DESIGN.md`` must name every module of the package, so that a module
added without redrawing the map fails here; the README's ``make run``
examples must run on a fresh clone (they once named a ``vmlinux`` nobody
has).
"""

from __future__ import annotations

import ast
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


# The walks name each function as `path:function` (path under lguestsim/,
# function as Class.method for a method); each must be defined there.
WALK_NAME = re.compile(r"`([\w/]+\.(?:py|c|h|S)):([\w.]+)`")
WALKS = ("## A hypercall, from the Launcher's read() and back",
         "## A virtio request, from the Guest's kick to its interrupt")


def defines(path: Path, name: str) -> bool:
    """Whether the source file ``path`` defines ``name`` (Python ``Class.method``
    or function, a C function, an assembler label)."""
    text = path.read_text()
    *outer, inner = name.split(".")
    if path.suffix == ".py":
        tree = ast.parse(text)
        scope = tree.body
        for cls in outer:
            found = [n for n in scope if isinstance(n, ast.ClassDef) and n.name == cls]
            if not found:
                return False
            scope = found[0].body
        return any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == inner
                   for n in scope)
    if path.suffix == ".S":
        return re.search(rf"^{re.escape(inner)}:", text, re.M) is not None
    # C: a definition starts at the line's beginning and is not a declaration.
    return re.search(rf"^[A-Za-z_][\w \*]*\b{re.escape(inner)}\([^;]*$", text,
                     re.M) is not None


def walk(title: str) -> list[tuple[str, str]]:
    text = DESIGN.read_text()
    assert title in text, f"docs/DESIGN.md has no section {title!r}"
    section = text.split(title, 1)[1].split("\n## ", 1)[0]
    return WALK_NAME.findall(section)


@pytest.mark.parametrize("title", WALKS)
def test_every_function_a_walk_names_is_defined_where_it_says(title):
    names = walk(title)
    assert len(names) >= 15, names
    missing = [f"{path}:{name}" for path, name in names
               if not (ROOT / "lguestsim" / path).is_file()
               or not defines(ROOT / "lguestsim" / path, name)]
    assert not missing, f"docs/DESIGN.md names functions that are not there: {missing}"


def test_the_walk_checker_can_tell_a_definition_from_a_call():
    assert defines(ROOT / "lguestsim/host/core.py", "Host.guest_steps")
    assert not defines(ROOT / "lguestsim/host/core.py", "Host.do_hcall")
    assert defines(ROOT / "lguestsim/guest/virtio_ring.c", "vring_kick")
    assert not defines(ROOT / "lguestsim/guest/virtio_blk.c", "vring_kick")   # only called
    assert defines(ROOT / "lguestsim/switcher/switcher.S", "return_to_host")
    assert not defines(ROOT / "lguestsim/switcher/switcher.S", "SWITCH_TO_HOST")


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
