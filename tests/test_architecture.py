"""The layout a newcomer relies on: arrows one way, no circles, short modules, heads.

docs/DESIGN.md draws the package's arrows: the processor knows nothing of
lguest, the Launcher reaches the Host only through /dev/lguest, the session
knows nothing of screens, and the story's layers go from the front ends down
to the processor.  pyproject.toml's ``[tool.importlinter]`` writes them as
contracts that ``lint-imports`` checks (``make test`` runs it); here each is
run, and each is shown to fail on a back-arrow planted in a copy of the
package.  Import-linter's graph library, grimp, then finds any circle among
the package's modules.  Every import counts as an arrow, wherever it stands:
one inside a function, or under TYPE_CHECKING, is still a place where a
reader of the lower module must open the higher one.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import lguestsim

try:
    import grimp
except ImportError:      # fail, saying what to install, rather than skip
    grimp = None

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "lguestsim"
INSTALL = "install import-linter (pip install import-linter, or make test's .[test] extras)"

LINT_IMPORTS = ("import sys; from importlinter.cli import lint_imports_command; "
                "sys.exit(lint_imports_command())")

CONTRACTS = {
    "x86": "The processor knows nothing of lguest",
    "launcher": "The Launcher reaches the Host only through /dev/lguest",
    "screens": "The session knows nothing of screens: only the views draw",
    "widgets": "Only the views use the widget libraries",
    "layers": "The story's layers, from the front ends down to the processor",
}


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess:
    """`lint-imports` with the project's contracts, on the lguestsim under
    ``package_parent``."""
    proc = subprocess.run([sys.executable, "-c", LINT_IMPORTS, "--no-cache",
                           "--config", str(ROOT / "pyproject.toml")],
                          cwd=package_parent, env={**os.environ, "PYTHONPATH": str(package_parent)},
                          capture_output=True, text=True, timeout=120)
    assert "No module named 'importlinter'" not in proc.stderr, INSTALL
    return proc


def test_the_designs_arrows_hold():
    proc = lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in CONTRACTS.values():
        assert f"{name} KEPT" in proc.stdout, proc.stdout


def test_make_test_runs_the_contracts():
    makefile = (ROOT / "Makefile").read_text()
    target = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "lint-imports" in target, target


# One back-arrow for each contract: (file in the copy, line added to it).
BACK_ARROWS = {
    "x86": ("x86/flags.py", "from ..trace import Trace"),
    "launcher": ("launcher/waker.py", "from ..host import page_tables"),
    "screens": ("exercises/host.py", "from ..views import base"),
    "widgets": ("trace.py", "import ipywidgets"),
    "layers": ("host/cost.py", "from ..launcher import report"),
}


@pytest.mark.parametrize("contract", sorted(BACK_ARROWS))
def test_a_back_arrow_breaks_its_contract(contract, tmp_path):
    copy = tmp_path / "lguestsim"
    shutil.copytree(PACKAGE, copy, ignore=lambda d, names: [
        n for n in names if not n.endswith(".py") and not (Path(d) / n).is_dir()])
    path, line = BACK_ARROWS[contract]
    target = copy / path
    target.write_text(target.read_text() + f"\n{line}\n")
    proc = lint_imports(tmp_path)
    assert proc.returncode != 0, proc.stdout
    assert f"{CONTRACTS[contract]} BROKEN" in proc.stdout, proc.stdout
    for other, name in CONTRACTS.items():
        if other not in (contract, "layers"):
            assert f"{name} KEPT" in proc.stdout, proc.stdout


# Today's circles inside the processor, each named by the import that closes
# it (the arrow that points back up the story).  The list may only shrink: a
# new circle fails, and so does an entry whose import no longer closes a
# circle.  (The speed work broke cpu <-> translate, with Block in blocks.py,
# and system <-> strings, with timing_key in timing.py and the string
# helpers in a table of strings.py's own; the family layout broke
# decode -> x87 -> operands -> decode, with the 387's opcode map in
# opcodes.py.)
ALLOWED_BACK_ARROWS: set[tuple[str, str]] = set()


def strongly_connected(graph) -> list[list[str]]:
    """Every circle among ``graph``'s modules: the strongly connected
    components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def package_graph():
    assert grimp is not None, INSTALL
    return grimp.build_graph("lguestsim", cache_dir=None)


def test_the_circle_finder_finds_a_circle():
    assert grimp is not None, INSTALL
    graph = grimp.ImportGraph()
    for importer, imported in [("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")]:
        graph.add_import(importer=importer, imported=imported)
    assert strongly_connected(graph) == [["p.a", "p.b", "p.c"]]


def test_no_import_circles_but_the_listed_ones_in_x86():
    graph = package_graph()
    assert Path(lguestsim.__file__).parent == PACKAGE, f"read another {lguestsim.__file__}"
    for importer, imported in sorted(ALLOWED_BACK_ARROWS):
        assert graph.direct_import_exists(importer=importer, imported=imported), (
            f"{importer} no longer imports {imported}: remove it from ALLOWED_BACK_ARROWS")
        assert graph.chain_exists(importer=imported, imported=importer), (
            f"{importer} -> {imported} closes no circle now: remove it from "
            "ALLOWED_BACK_ARROWS")
        graph.remove_import(importer=importer, imported=imported)
    circles = strongly_connected(graph)
    assert not circles, f"import circles: {circles}"


LONG = 800
LONG_ALLOWED: set[str] = set()   # none now; a file over the line is split along the story


def test_no_module_is_over_800_lines():
    lengths = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines())
               for p in PACKAGE.rglob("*.py")}
    long = {p: n for p, n in lengths.items() if n > LONG and p not in LONG_ALLOWED}
    assert not long, f"over {LONG} lines: split along the story: {long}"
    assert all(lengths[p] > LONG for p in LONG_ALLOWED), (
        "an allowed long file is short now: remove it from LONG_ALLOWED")


SENTENCE_END = re.compile(r"[.!?](\s|$)")


@pytest.mark.parametrize("path", sorted(p.relative_to(ROOT).as_posix()
                                        for p in PACKAGE.rglob("*.py")))
def test_every_module_opens_with_what_it_is(path):
    head = ast.get_docstring(ast.parse((ROOT / path).read_text()))
    assert head, f"{path} does not open with a docstring"
    assert len(head.split()) >= 20 and len(SENTENCE_END.findall(head)) >= 2, (
        f"{path}'s docstring is no more than a line: say what it is and where it sits")


def test_one_place_delivers_exceptions():
    """interrupts.deliver_exception() is the processor's one way into the IDT
    (x86/README.md): only CPU.deliver() calls it, and the rest of x86/ raises
    CPUFault or calls CPU.deliver()."""
    callers = sorted(p.name for p in (PACKAGE / "x86").glob("*.py")
                     if p.name != "interrupts.py" and "deliver_exception(" in p.read_text())
    assert callers == ["cpu.py"], callers
    cpu = (PACKAGE / "x86" / "cpu.py").read_text()
    assert cpu.count("interrupts.deliver_exception(") == 1
    outside = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
                     if p.name != "interrupts.py"
                     and re.search(r"\binterrupts\._deliver", p.read_text()))
    assert not outside, f"reaching past deliver_exception() into the IDT: {outside}"
