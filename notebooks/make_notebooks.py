"""Build the chapter notebooks (``notebooks/NN_name.ipynb``) from their sources.

Each chapter is written as a plain Python file in ``notebooks/src/`` in the
"percent" format: ``# %%`` starts a code cell, ``# %% [markdown]`` a text
cell whose lines are comments.  Plain text diffs well and lints with ruff;
this script turns each source into a notebook with no outputs (the book and
the tests execute them).  ``python notebooks/make_notebooks.py --check`` fails
if a notebook is out of date with its source.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"


def cells(text: str) -> list:
    out = []
    kind, lines = None, []

    def flush() -> None:
        if kind is None:
            return
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(ln[2:] if ln.startswith("# ") else ln.lstrip("#")
                             for ln in body.splitlines())
            out.append(nbformat.v4.new_markdown_cell(body))
        elif body:
            out.append(nbformat.v4.new_code_cell(body))

    for line in text.splitlines():
        if line.startswith("# %%"):
            flush()
            kind = "markdown" if "[markdown]" in line else "code"
            lines = []
        elif kind is not None:
            lines.append(line)
    flush()
    return out


def notebook(source: Path):
    nb = nbformat.v4.new_notebook()
    nb.cells = cells(source.read_text())
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{source.stem.replace('_', '-')}-{i}"
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def build(check: bool = False) -> list[Path]:
    """Write every notebook; return those that changed (or would, with ``check``)."""
    changed = []
    for source in sorted(SRC.glob("*.py")):
        target = HERE / f"{source.stem}.ipynb"
        text = nbformat.writes(notebook(source)) + "\n"
        if not target.exists() or target.read_text() != text:
            changed.append(target)
            if not check:
                target.write_text(text)
    return changed


if __name__ == "__main__":
    check = "--check" in sys.argv
    stale = build(check)
    for path in stale:
        print(("out of date: " if check else "wrote ") + str(path.relative_to(HERE.parent)))
    sys.exit(1 if check and stale else 0)
