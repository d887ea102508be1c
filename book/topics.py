"""The original journey's 145 topics, and which of them lguestsim tells.

lguest 2.6.23 tagged 145 passages of its code (``../shared/TOPICS.md`` lists
each tag, its file and what it introduces).  lguestsim gives a passage the
original's tag when it tells the same topic, so the book can say, topic by
topic, where lguestsim tells it or that it is not told yet.

lguest 2.6.25 told the journey again (``../shared/seeds/001_*.txt``, its
patch): most of its tags reword a 2.6.23 topic, a few are new (H:040, L:240),
and a few name a different topic under the same number.  The 2.6.25 topics
are the tags that patch carries.  Each topic has a generation: "2.6.23",
"2.6.25" or "both".  Where a tag names different topics in the two
generations, lguestsim's passage under that tag tells the 2.6.23 one, and
``TOLD_2625_BY`` names the passage (of a free number) that tells the 2.6.25
one; the page shows both and counts each generation's coverage separately.
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
SEED_2625 = Path(os.environ.get("LGUESTSIM_SEED_2625",
                               TOPICS_MD.parent / "seeds" / "001_52f6efb162b85616.txt"))
SEED_TAG = re.compile(r"/\*:?([A-Z]:\d{3})")
ROW = re.compile(r"^\|\s*([A-Z]):(\d{3})\s*\|\s*([^|]+?)\s*\|\s*(.*?)\s*\|\s*$")


# Why a topic is not told, where the reason is that lguestsim does not have the
# mechanism at all (shown only while the topic stays untold).
NOT_SIMULATED = {
    "H:460": "the Host takes no page references, so there is none to release "
             "(H:450 says so)",
}


# A 2.6.25 tag whose topic is not the 2.6.23 one of the same number: the
# passage that tells the 2.6.25 topic.
TOLD_2625_BY = {
    "P:050": "P:051",   # 2.6.23: the lguest bus (type_show); 2.6.25: virtio's device page
    "G:020": "G:021",   # 2.6.23: lguest_asm.S's entry; 2.6.25: startup_32 and hardware_subarch
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


def read_2625(path: Path = SEED_2625) -> list[str]:
    """The 2.6.25 journey's tags: those its patch carries, in first-seen order."""
    if not path.exists():
        raise TopicsError(f"{path} not found: the topics page's 2.6.25 column needs the "
                          "shared seed 001 beside the checkout (or LGUESTSIM_SEED_2625=path)")
    tags = list(dict.fromkeys(SEED_TAG.findall(path.read_text(encoding="utf-8"))))
    if not tags:
        raise TopicsError(f"{path}: no lguest tags found; is this the 2.6.25 patch?")
    return tags


def generation(tag: str, table: list[Topic], tags_2625: list[str]) -> str:
    """Which journey has ``tag``: "2.6.23", "2.6.25" or "both"."""
    old, new = tag in {t.tag for t in table}, tag in tags_2625
    if not (old or new):
        raise TopicsError(f"{tag} is in neither journey")
    return "both" if old and new else "2.6.23" if old else "2.6.25"


def told_2625(tags_2625: list[str], chapters: dict[str, list[passages.Passage]]
              ) -> dict[str, passages.Passage]:
    """Each 2.6.25 topic lguestsim tells, with the passage that tells it."""
    ours = {p.tag: p for found in chapters.values() for p in found}
    out = {}
    for tag in tags_2625:
        by = TOLD_2625_BY.get(tag, tag)
        if by in ours:
            out[tag] = ours[by]
    return out


def coverage_2625(tags_2625: list[str], chapters: dict[str, list[passages.Passage]]
                  ) -> tuple[int, int]:
    return len(told_2625(tags_2625, chapters)), len(tags_2625)


def told(table: list[Topic], chapters: dict[str, list[passages.Passage]]
         ) -> dict[str, passages.Passage]:
    """Each topic lguestsim tells, with the passage that tells it."""
    ours = {p.tag: p for found in chapters.values() for p in found}
    return {t.tag: ours[t.tag] for t in table if t.tag in ours}


def coverage(table: list[Topic], chapters: dict[str, list[passages.Passage]]) -> tuple[int, int]:
    return len(told(table, chapters)), len(table)


def render(table: list[Topic], chapters: dict[str, list[passages.Passage]],
           code_pages: dict[str, str], tags_2625: list[str] | None = None) -> str:
    """The topics page's body: each generation's coverage, then one row per topic
    (the 2.6.23 table's, then the tags only 2.6.25 has).  ``code_pages`` names
    each chapter letter's code page."""
    tags_2625 = read_2625() if tags_2625 is None else tags_2625
    done = told(table, chapters)
    done_2625 = told_2625(tags_2625, chapters)
    n, total = len(done), len(table)
    n5, total5 = len(done_2625), len(tags_2625)
    original = {t.tag for t in table} | set(tags_2625) | set(TOLD_2625_BY.values())
    own = sum(1 for found in chapters.values() for p in found if p.tag not in original)

    def bar(gen: str, k: int, of: int) -> str:
        return (f'<p class="coverage" data-generation="{gen}" data-told="{k}" '
                f'data-total="{of}">{gen} topics told: {k} / {of} ({100 * k / of:.0f}%) '
                f'<span class="bar"><span style="width:{100 * k / of:.1f}%"></span></span></p>')

    def link(p: passages.Passage) -> str:
        anchor = f"{code_pages[p.chapter]}#{p.chapter}-{p.number:03d}"
        return f'<a href="{anchor}">{html.escape(p.path)}:{p.line}</a>'

    out = [
        "<h1>The journey's topics</h1>",
        "<p>lguest's 2.6.23 source tagged 145 passages, the journey its book told; "
        "2.6.25 told it again for virtio, rewording many passages and adding a few. "
        "lguestsim tags a passage with the original's number when it tells the same "
        "topic. This page maps each original topic, with the generation that has it "
        "(2.6.23, 2.6.25 or both), to the lguestsim passage that tells it, or marks it "
        "as not yet told. Where a number names a different topic in 2.6.25, the row "
        "names the passage telling each.</p>",
        bar("2.6.23", n, total),
        bar("2.6.25", n5, total5),
        f"<p>lguestsim also tells {own} topics of its own, under free numbers.</p>",
    ]
    rows = ["<tr><th>tag</th><th>generation</th><th>original file</th><th>introduces</th>"
            "<th>told by lguestsim</th></tr>"]
    per_chapter: dict[str, list[int]] = {}
    only_2625 = [Topic(tag, "(2.6.25 only)", "-") for tag in tags_2625
                 if tag not in {t.tag for t in table}]
    for t in table + only_2625:
        letter = t.tag[0]
        gen = generation(t.tag, table, tags_2625)
        counts = per_chapter.setdefault(letter, [0, 0])
        old = gen != "2.6.25"
        p = done.get(t.tag) if old else done_2625.get(t.tag)
        if old:
            counts[1] += 1
            counts[0] += p is not None
        if p:
            cell = link(p)
            if gen == "both" and t.tag in TOLD_2625_BY and t.tag in done_2625:
                cell += f"; its 2.6.25 topic: {link(done_2625[t.tag])}"
            cls = "told"
        else:
            why = NOT_SIMULATED.get(t.tag)
            cell = "not yet told" + (f": {html.escape(why)}" if why else "")
            cls = "untold"
        rows.append(f'<tr class="{cls}" data-topic="{t.tag}" data-generation="{gen}">'
                    f"<td>{t.tag}</td><td>{gen}</td>"
                    f"<td>{html.escape(t.file)}</td><td>{html.escape(t.introduces)}</td>"
                    f"<td>{cell}</td></tr>")
    summary = ", ".join(f"{passages.CHAPTERS[c]} {a}/{b}" for c, (a, b) in per_chapter.items()
                        if b)
    out.append(f"<p>2.6.23 topics by chapter: {summary}.</p>")
    out.append(f'<table class="topics">{"".join(rows)}</table>')
    return "".join(out)


def main() -> int:
    """Print each generation's coverage: ``python book/topics.py``."""
    chapters = passages.gather()
    table, tags_2625 = read(), read_2625()
    for gen, (k, of) in (("2.6.23", coverage(table, chapters)),
                         ("2.6.25", coverage_2625(tags_2625, chapters))):
        print(f"{gen}: {k} / {of} topics told ({100 * k / of:.0f}%)")
    missing = [t for t in tags_2625 if t not in told_2625(tags_2625, chapters)]
    print("2.6.25 not told:", ", ".join(missing) or "none")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
