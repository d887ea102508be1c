"""The original journey's 145 topics, and which of them lguestsim tells.

lguest 2.6.23 tagged 145 passages of its code (``../shared/TOPICS.md`` lists
each tag, its file and what it introduces).  lguestsim gives a passage the
original's tag when it tells the same topic, so the book can say, topic by
topic, where lguestsim tells it or that it is not told yet.
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass
from pathlib import Path

import passages

TOPICS_MD = Path(os.environ.get("LGUESTSIM_TOPICS",
                                Path(__file__).resolve().parent.parent.parent
                                / "shared" / "TOPICS.md"))
ROW = re.compile(r"^\|\s*([A-Z]):(\d{3})\s*\|\s*([^|]+?)\s*\|\s*(.*?)\s*\|\s*$")


# Why a topic is not told, where the reason is that lguestsim does not have the
# mechanism at all (shown only while the topic stays untold).
NOT_SIMULATED = {
    "G:050": "lguestsim's Guest calls every paravirt op through its table and patches "
             "no call sites (M:040 is the exercise)",
    "G:055": "no patch templates: the Guest does no patching",
    "G:060": "no lguest_patch(): the Guest does no patching",
    "H:460": "the Host takes no page references, so there is none to release "
             "(H:450 says so)",
}


class TopicsError(Exception):
    """TOPICS.md is missing or not what the book expects."""


@dataclass
class Topic:
    tag: str           # "H:200"
    file: str          # the original's file
    introduces: str    # the function or structure, "-" for a chapter-level passage


def read(path: Path = TOPICS_MD) -> list[Topic]:
    """The topics of TOPICS.md, in its order."""
    if not path.exists():
        raise TopicsError(f"{path} not found: the book's topics page needs the shared "
                          "TOPICS.md beside the checkout (or LGUESTSIM_TOPICS=path)")
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        m = ROW.match(line)
        if m:
            letter, digits, file, intro = m.groups()
            found.append(Topic(f"{letter}:{digits}", file, intro))
    tags = [t.tag for t in found]
    if len(set(tags)) != len(tags) or not found:
        raise TopicsError(f"{path}: expected a table of distinct tags, found {len(tags)} rows "
                          f"({len(tags) - len(set(tags))} repeated)")
    return found


def told(table: list[Topic], chapters: dict[str, list[passages.Passage]]
         ) -> dict[str, passages.Passage]:
    """Each topic lguestsim tells, with the passage that tells it."""
    ours = {p.tag: p for found in chapters.values() for p in found}
    return {t.tag: ours[t.tag] for t in table if t.tag in ours}


def coverage(table: list[Topic], chapters: dict[str, list[passages.Passage]]) -> tuple[int, int]:
    return len(told(table, chapters)), len(table)


def render(table: list[Topic], chapters: dict[str, list[passages.Passage]],
           code_pages: dict[str, str]) -> str:
    """The topics page's body: the coverage, then one row per original topic.
    ``code_pages`` names each chapter letter's code page."""
    done = told(table, chapters)
    n, total = len(done), len(table)
    original = {t.tag for t in table}
    own = sum(1 for found in chapters.values() for p in found if p.tag not in original)
    out = [
        "<h1>The journey's topics</h1>",
        "<p>lguest's 2.6.23 source tagged 145 passages, the journey its book told. "
        "lguestsim tags a passage with the original's number when it tells the same "
        "topic. This page maps each original topic to the lguestsim passage that tells "
        "it, or marks it as not yet told.</p>",
        f'<p class="coverage" data-told="{n}" data-total="{total}">Topics told: {n} / {total}'
        f' ({100 * n / total:.0f}%) <span class="bar"><span style="width:{100 * n / total:.1f}%">'
        f"</span></span></p>",
        f"<p>lguestsim also tells {own} topics of its own, under free numbers.</p>",
    ]
    rows = ["<tr><th>tag</th><th>original file</th><th>introduces</th>"
            "<th>told by lguestsim</th></tr>"]
    per_chapter: dict[str, list[int]] = {}
    for t in table:
        letter = t.tag[0]
        counts = per_chapter.setdefault(letter, [0, 0])
        counts[1] += 1
        p = done.get(t.tag)
        if p:
            counts[0] += 1
            anchor = f"{code_pages[letter]}#{p.chapter}-{p.number:03d}"
            cell = (f'<a href="{anchor}">{html.escape(p.path)}:{p.line}</a>')
            cls = "told"
        else:
            why = NOT_SIMULATED.get(t.tag)
            cell = "not yet told" + (f": {html.escape(why)}" if why else "")
            cls = "untold"
        rows.append(f'<tr class="{cls}" data-topic="{t.tag}"><td>{t.tag}</td>'
                    f"<td>{html.escape(t.file)}</td><td>{html.escape(t.introduces)}</td>"
                    f"<td>{cell}</td></tr>")
    summary = ", ".join(f"{passages.CHAPTERS[c]} {a}/{b}" for c, (a, b) in per_chapter.items())
    out.append(f"<p>By chapter: {summary}.</p>")
    out.append(f'<table class="topics">{"".join(rows)}</table>')
    return "".join(out)
