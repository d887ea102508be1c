"""Where each name of lguestsim is defined, so the book's code can link to it.

The code pages and the source pages show code highlighted by pygments, and a
reader who meets ``run_guest_once`` or ``lguest_send_dma`` wants to see it.
This module makes an index of definitions -- in Python, every ``def`` and
``class`` and every name assigned at the top of a module (found with ``ast``);
in the Guest's and the Switcher's C, headers and assembler, every function
defined, ``struct``, ``#define`` and global label -- and then turns each
name pygments marks in the highlighted HTML into a link to its definition's
line in the book's copy of that file.

A name links only where the link cannot mislead: to a definition in the same
file when there is one at its top level, otherwise to the one definition of
that name in the whole package. Names defined in several places (``read``,
``__init__``) stay plain text, and so does an attribute (``x.machine``) unless
its file defines that name exactly once: which class ``x`` is, only running
the code can tell. Python names are looked up among Python
definitions, and C and assembler names among C and assembler ones.
"""

from __future__ import annotations

import ast
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

PYTHON = "python"
C = "c"                       # C, headers and assembler: one namespace, as the linker sees

# Function definitions in C: a line at the left margin naming a function
# whose parameter list is followed by its body's "{".
_C_FUNCTION = re.compile(r"^(?!return\b|else\b|if\b|while\b|for\b|switch\b|do\b)"
                         r"[A-Za-z_][\w \t\*]*?\b([A-Za-z_]\w*)\s*\(", re.M)
_C_STRUCT = re.compile(r"^\s*(?:typedef\s+)?struct\s+([A-Za-z_]\w*)\s*\{", re.M)
_C_DEFINE = re.compile(r"^\s*#\s*define\s+([A-Za-z_]\w*)", re.M)
_ASM_LABEL = re.compile(r"^([A-Za-z_]\w*):", re.M)
_ASM_ENTRY = re.compile(r"^\s*ENTRY\(([A-Za-z_]\w*)\)", re.M)


def language_of(path: str) -> str:
    return PYTHON if path.endswith(".py") else C


@dataclass
class Index:
    """name -> the places that define it, per language, and each file's own names."""

    defs: dict[str, dict[str, list[tuple[str, int]]]] = field(
        default_factory=lambda: {PYTHON: {}, C: {}})
    top: dict[str, dict[str, int]] = field(default_factory=dict)    # path -> name -> line
    local: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # at any depth

    def add(self, path: str, name: str, line: int, top_level: bool) -> None:
        places = self.defs[language_of(path)].setdefault(name, [])
        if (path, line) not in places:
            places.append((path, line))
        if top_level:
            self.top.setdefault(path, {}).setdefault(name, line)
        lines = self.local.setdefault(path, {}).setdefault(name, [])
        if line not in lines:
            lines.append(line)

    def target(self, path: str, name: str) -> tuple[str, int] | None:
        """Where ``name``, met in ``path``, is defined; None when unknown or ambiguous."""
        own = self.top.get(path, {}).get(name)
        if own is not None:
            return path, own
        places = self.defs[language_of(path)].get(name, [])
        return places[0] if len(places) == 1 else None

    def attribute_target(self, path: str, name: str) -> tuple[str, int] | None:
        """Where the attribute ``.name``, met in ``path``, is defined: in that file, once."""
        lines = self.local.get(path, {}).get(name, [])
        return (path, lines[0]) if len(lines) == 1 else None

    def files(self) -> set[str]:
        return {p for lang in self.defs.values() for places in lang.values() for p, _ in places}


def _python(index: Index, path: str, text: str) -> None:
    tree = ast.parse(text, filename=path)
    for node in tree.body:
        for target in _assigned(node):
            index.add(path, target, node.lineno, top_level=True)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            index.add(path, node.name, node.lineno, top_level=node in tree.body)


def _assigned(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _closing_paren(text: str, start: int) -> int | None:
    """The offset of the ")" that closes the "(" just before ``start``."""
    depth = 1
    for i in range(start, min(len(text), start + 2000)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    return None


def _c(index: Index, path: str, text: str) -> None:
    patterns = [_C_STRUCT, _C_DEFINE]
    if path.endswith(".S"):
        patterns += [_ASM_LABEL, _ASM_ENTRY]
    else:
        for m in _C_FUNCTION.finditer(text):
            close = _closing_paren(text, m.end())
            if close is not None and text[close + 1:].lstrip().startswith("{"):
                index.add(path, m.group(1), _line_of(text, m.start()), top_level=True)
    for pattern in patterns:
        for m in pattern.finditer(text):
            index.add(path, m.group(1), _line_of(text, m.start()), top_level=True)


def build_index(root: Path, package: str = "lguestsim") -> Index:
    """The definitions of every .py, .c, .h and .S file under ``root/package``."""
    index = Index()
    for file in sorted((root / package).rglob("*")):
        if file.suffix not in (".py", ".c", ".h", ".S") or "__pycache__" in file.parts:
            continue
        path = file.relative_to(root).as_posix()
        text = file.read_text(encoding="utf-8")
        if file.suffix == ".py":
            _python(index, path, text)
        else:
            _c(index, path, text)
    return index


# The pygments token classes that are uses of a name: plain names, class names
# (also "struct lguest_regs" in C), and the assembler's symbols.
_NAME_SPAN = re.compile(r'(<span class="o">\.</span>)?'
                        r'<span class="(n|nc|no|nx)">(\$?)([A-Za-z_]\w*)</span>')


def link_names(highlighted: str, path: str, index: Index, href) -> str:
    """Make each name in pygments' HTML of ``path`` a link to its definition.

    ``href(path, line)`` gives the link for a definition.
    """
    def link(m: re.Match) -> str:
        dot, cls, dollar, name = m.groups()
        found = index.attribute_target(path, name) if dot else index.target(path, name)
        if found is None:
            return m.group(0)
        url = html.escape(href(*found), quote=True)
        return (f'{dot or ""}<span class="{cls}">{dollar}<a class="def" href="{url}">{name}</a>'
                f'</span>')

    return _NAME_SPAN.sub(link, highlighted)
