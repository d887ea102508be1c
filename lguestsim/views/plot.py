"""Small SVG charts for the experiments, with no plotting library needed.

``bar_chart({"label": value, ...})`` returns an SVG string; ``Chart`` shows it
in a notebook (and in the static book) as it is.  It draws the Mastery
chapter's measurements; like every view it only reads numbers it is given.
"""

from __future__ import annotations

from .base import esc

PALETTE = ("#3c78d8", "#e07b39", "#16a085", "#8e44ad", "#c0392b", "#7f8c8d")


def bar_chart(values: dict[str, float], title: str = "", unit: str = "",
              width: int = 520, bar_height: int = 22,
              series: dict[str, dict[str, float]] | None = None) -> str:
    """Horizontal bars, one per label (or one group per label if ``series`` is given:
    {series name: {label: value}})."""
    if series is None:
        series = {"": values}
    labels: list[str] = []
    for data in series.values():
        for k in data:
            if k not in labels:
                labels.append(k)
    vmax = max((v for data in series.values() for v in data.values()), default=1) or 1
    left, right = 170, 90
    n = len(series)
    group = bar_height * n + 8
    height = 30 + group * len(labels) + (18 if n > 1 else 0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">',
             f'<text x="4" y="16" font-size="13" font-weight="bold">{esc(title)}</text>']
    y = 28
    for label in labels:
        parts.append(f'<text x="{left - 6}" y="{y + group / 2}" '
                     f'text-anchor="end">{esc(label)}</text>')
        for i, (name, data) in enumerate(series.items()):
            v = data.get(label)
            if v is None:
                continue
            w = (width - left - right) * v / vmax
            by = y + i * bar_height
            parts.append(f'<rect x="{left}" y="{by}" width="{w:.1f}" height="{bar_height - 4}" '
                         f'fill="{PALETTE[i % len(PALETTE)]}"><title>{esc(name)} {esc(label)}: '
                         f'{v:g}</title></rect>')
            parts.append(f'<text x="{left + w + 4:.1f}" y="{by + bar_height - 8}">'
                         f'{v:,.0f} {esc(unit)}</text>')
        y += group
    if n > 1:
        x = left
        for i, name in enumerate(series):
            color = PALETTE[i % len(PALETTE)]
            parts.append(f'<rect x="{x}" y="{y + 2}" width="10" height="10" fill="{color}"/>'
                         f'<text x="{x + 14}" y="{y + 11}">{esc(name)}</text>')
            x += 20 + 7 * len(name)
    parts.append("</svg>")
    return "".join(parts)


class Chart:
    """An SVG chart that displays itself in a notebook."""

    def __init__(self, svg: str) -> None:
        self.svg = svg

    def _repr_html_(self) -> str:
        return f'<div class="lgs-chart">{self.svg}</div>'
