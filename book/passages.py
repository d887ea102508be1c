"""Gather the code's literate passages, chapter by chapter.

lguest's documentation came out of its source: a script walked every file,
cut out the comments tagged ``H:200`` and the code after them, and printed a
chapter's passages in number order.  This module does the same for
lguestsim: ``gather()`` reads every code file under ``lguestsim/`` and
returns its passages; a tag used twice is an error naming both places.  What
counts as a passage, and how much code it shows, is written down in
``book/README.md``.

Run it to check the tags: ``python book/passages.py`` prints each chapter's
passages (or the first error) and exits non-zero on an error.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = {"P": "Preparation", "G": "Guest", "D": "Drivers", "L": "Launcher",
            "H": "Host", "S": "Switcher", "V": "Virtio", "M": "Mastery"}
CODE_SUFFIXES = (".py", ".c", ".h", ".S")

PY_TAG = re.compile(r"^(\s*)#: ([A-Z]):(\d+)\b ?(.*)$")
C_TAG = re.compile(r"^(\s*)/\*: ([A-Z]):(\d+)\b ?(.*)$")
# lguest's own spelling, /*H:200, is not ours: say so instead of missing it.
LGUEST_STYLE = re.compile(r"/\*[A-Z]:\d+")
PY_END = re.compile(r"^\s*#:\s*$")
C_END = re.compile(r"^\s*/\*:\*/\s*$")


class PassageError(Exception):
    """A tag that breaks the book's rules (reused, malformed, unknown chapter)."""


@dataclass
class Passage:
    """One tagged comment and the code it introduces."""

    chapter: str                 # the letter, "H"
    number: int                  # 200
    path: str                    # relative to the repository, "lguestsim/host/core.py"
    line: int                    # 1-based line of the tag
    prose: str                   # Markdown
    code: list[str] = field(default_factory=list)
    code_line: int = 0           # 1-based line of the first code line (0: no code)

    @property
    def tag(self) -> str:
        return f"{self.chapter}:{self.number:03d}"

    @property
    def language(self) -> str:
        return {".py": "python", ".c": "c", ".h": "c", ".S": "gas"}[Path(self.path).suffix]


def _check_tag(letter: str, digits: str, where: str) -> int:
    if letter not in CHAPTERS:
        raise PassageError(f"{where}: chapter letter {letter!r} is not one of "
                           f"{''.join(CHAPTERS)}")
    if len(digits) != 3:
        raise PassageError(f"{where}: tag {letter}:{digits} needs a three-digit number")
    return int(digits)


def _python_code(lines: list[str], start: int) -> list[str]:
    """The statement at ``lines[start]``: a whole def/class, else up to a blank line."""
    if start >= len(lines) or not lines[start].strip() or PY_END.match(lines[start]):
        return []
    first = lines[start]
    indent = len(first) - len(first.lstrip())
    i = start
    while i < len(lines) and lines[i].lstrip().startswith("@"):
        i += 1                                  # decorators belong to the def below
    head = lines[i].lstrip() if i < len(lines) else ""
    if head.startswith(("def ", "class ", "async def ")):
        i += 1
        while i < len(lines):
            text = lines[i]
            if PY_END.match(text) or PY_TAG.match(text):
                break
            if text.strip() and len(text) - len(text.lstrip()) <= indent \
                    and not text.lstrip().startswith((")", "]", "}")):
                break
            i += 1
    else:
        while i < len(lines) and lines[i].strip() and not PY_END.match(lines[i]) \
                and not PY_TAG.match(lines[i]):
            if len(lines[i]) - len(lines[i].lstrip()) < indent:
                break                           # the enclosing block ended
            i += 1
    out = lines[start:i]
    while out and not out[-1].strip():
        out.pop()
    return out


_C_NOISE = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|//.*$|/\*.*?\*/')


def _c_code(lines: list[str], start: int) -> list[str]:
    """Lines from ``start`` to the end of the braces they open, else to a blank line."""
    depth, opened, i = 0, False, start
    while i < len(lines):
        text = lines[i]
        if (not text.strip() and not opened) or C_END.match(text) or C_TAG.match(text):
            break
        bare = _C_NOISE.sub("", text)
        depth += bare.count("{") - bare.count("}")
        opened = opened or "{" in bare
        i += 1
        if depth < 0:                           # the enclosing block closed: not ours
            i -= 1
            break
        if opened and depth == 0:
            break
    out = lines[start:i]
    while out and not out[-1].strip():
        out.pop()
    return out


def _asm_code(lines: list[str], start: int) -> list[str]:
    """Lines from ``start`` to the next tag, an end marker or the end of the file."""
    i = start
    while i < len(lines) and not C_TAG.match(lines[i]) and not C_END.match(lines[i]):
        i += 1
    out = lines[start:i]
    while out and not out[-1].strip():
        out.pop()
    return out


def _python_passages(path: str, lines: list[str]) -> list[Passage]:
    found = []
    for n, text in enumerate(lines):
        m = PY_TAG.match(text)
        if not m:
            continue
        indent, letter, digits, first = m.groups()
        number = _check_tag(letter, digits, f"{path}:{n + 1}")
        prose = [first]
        i = n + 1
        while i < len(lines):
            s = lines[i]
            if not s.startswith(indent + "#") or PY_TAG.match(s) or PY_END.match(s):
                break
            body = s[len(indent) + 1:]
            prose.append(body[1:] if body.startswith(" ") else body)
            i += 1
        code = _python_code(lines, i)
        found.append(Passage(letter, number, path, n + 1, _paragraphs(prose), code,
                             i + 1 if code else 0))
    return found


def _c_passages(path: str, lines: list[str], asm: bool) -> list[Passage]:
    found = []
    for n, text in enumerate(lines):
        style = LGUEST_STYLE.search(text)
        if style and not C_TAG.match(text):
            raise PassageError(f"{path}:{n + 1}: write the tag as '/*: {style.group(0)[2:]}'"
                               " (lguestsim's form), not lguest's")
        m = C_TAG.match(text)
        if not m:
            continue
        _indent, letter, digits, first = m.groups()
        number = _check_tag(letter, digits, f"{path}:{n + 1}")
        prose, i = [], n
        rest = first
        while True:
            closed = "*/" in rest
            piece = rest.split("*/", 1)[0] if closed else rest
            piece = re.sub(r"^\s*\* ?", "", piece) if i > n else piece
            prose.append(piece.rstrip())
            if closed:
                break
            i += 1
            if i >= len(lines):
                raise PassageError(f"{path}:{n + 1}: the comment of {letter}:{digits} "
                                   "never ends")
            rest = lines[i]
        start = i + 1
        code = _asm_code(lines, start) if asm else _c_code(lines, start)
        found.append(Passage(letter, number, path, n + 1, _paragraphs(prose), code,
                             start + 1 if code else 0))
    return found


def _paragraphs(prose: list[str]) -> str:
    return "\n".join(prose).strip()


def code_files(root: Path = ROOT) -> list[Path]:
    """Every file the book reads passages from, in a stable order."""
    base = root / "lguestsim"
    return sorted(p for p in base.rglob("*") if p.suffix in CODE_SUFFIXES and p.is_file())


def passages_of(path: Path, root: Path = ROOT) -> list[Passage]:
    """The passages of one file."""
    rel = path.relative_to(root).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix == ".py":
        return _python_passages(rel, lines)
    return _c_passages(rel, lines, asm=path.suffix == ".S")


def gather(root: Path = ROOT) -> dict[str, list[Passage]]:
    """Every chapter's passages in number order; a reused tag is an error."""
    seen: dict[str, Passage] = {}
    for path in code_files(root):
        for p in passages_of(path, root):
            if p.tag in seen:
                first = seen[p.tag]
                raise PassageError(f"tag {p.tag} is used twice: {first.path}:{first.line} "
                                   f"and {p.path}:{p.line}")
            seen[p.tag] = p
    chapters: dict[str, list[Passage]] = {c: [] for c in CHAPTERS}
    for p in seen.values():
        chapters[p.chapter].append(p)
    for found in chapters.values():
        found.sort(key=lambda p: p.number)
    return chapters


def main(argv: list[str]) -> int:
    try:
        chapters = gather()
    except PassageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for letter, found in chapters.items():
        print(f"{letter} {CHAPTERS[letter]}: {len(found)} passages")
        if "-v" in argv:
            for p in found:
                first = p.prose.splitlines()[0] if p.prose else ""
                print(f"  {p.tag}  {p.path}:{p.line}  ({len(p.code)} lines)  {first[:60]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
