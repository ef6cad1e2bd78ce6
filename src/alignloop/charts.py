"""Small SVG charts drawn server-side (admin dashboard, evaluation reports): no plotting
library, no JavaScript, nothing fetched. Every label is XML-escaped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

# A palette that stays distinguishable for common colour-vision deficiencies (Okabe-Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000")
FONT = "font-family='system-ui, sans-serif' font-size='12'"


def nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 x 10^k at or above `value` (an axis top with round ticks)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return float(step * magnitude)
    return float(10 * magnitude)


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    return "\n".join(
        [
            f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            f"viewBox='0 0 {width} {height}' role='img' aria-label='{escape(title)}'>",
            f"<title>{escape(title)}</title>",
            f"<rect width='{width}' height='{height}' fill='#fff'/>",
            f"<text x='8' y='18' {FONT} font-weight='bold'>{escape(title)}</text>",
            *body,
            "</svg>",
        ]
    )


def _tick_label(value: float) -> str:
    return f"{value:g}"


def line_chart(
    x_labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    title: str,
    width: int = 720,
    height: int = 300,
) -> str:
    """One line per series over shared x labels (e.g. days), with a legend on the right."""
    legend_chars = max((len(f"{name} ({sum(v):g})") for name, v in series.items()), default=0)
    left, right, top, bottom = 44, 40 + 7 * legend_chars, 30, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((max(v, default=0) for v in series.values()), default=0)
    counts = all(float(x).is_integer() for v in series.values() for x in v)
    top_value = max(nice_max(peak), 5.0) if counts else nice_max(peak)
    n = max(len(x_labels), 1)

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h * (1 - v / top_value)

    body = _axes(left, top, plot_w, plot_h, top_value)
    step = max(1, math.ceil(n / 8))
    for i in range(0, len(x_labels), step):
        body.append(
            f"<text x='{x(i):.1f}' y='{top + plot_h + 16}' {FONT} text-anchor='middle' "
            f"fill='#444'>{escape(x_labels[i][5:] if len(x_labels[i]) == 10 else x_labels[i])}"
            "</text>"
        )
    for k, (name, values) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        body.append(f"<polyline points='{points}' fill='none' stroke='{colour}' stroke-width='2'/>")
        legend_y = top + 14 + 18 * k
        body.append(
            f"<rect x='{width - right + 12}' y='{legend_y - 9}' width='12' height='12' "
            f"fill='{colour}'/><text x='{width - right + 30}' y='{legend_y + 1}' {FONT}>"
            f"{escape(name)} ({_tick_label(sum(values))})</text>"
        )
    return _svg(width, height, title, body)


def _axes(left: int, top: int, plot_w: int, plot_h: int, top_value: float) -> list[str]:
    """Horizontal grid lines at round values: steps of a fifth of 1 or 5 x 10^k, a quarter of 2."""
    steps = 4 if f"{top_value:e}".startswith("2") else 5
    parts = []
    for j in range(steps + 1):
        value = top_value * j / steps
        y = top + plot_h * (1 - j / steps)
        parts.append(
            f"<line x1='{left}' x2='{left + plot_w}' y1='{y:.1f}' y2='{y:.1f}' stroke='#ddd'/>"
            f"<text x='{left - 6}' y='{y + 4:.1f}' {FONT} text-anchor='end' fill='#444'>"
            f"{_tick_label(value)}</text>"
        )
    parts.append(f"<line x1='{left}' x2='{left}' y1='{top}' y2='{top + plot_h}' stroke='#888'/>")
    return parts


def bar_chart(
    values: Mapping[str, float], title: str, width: int = 720, bar_height: int = 22
) -> str:
    """Horizontal bars, one per label, each with its value written beside it."""
    label_w, top, gap = 190, 30, 8
    height = top + len(values) * (bar_height + gap) + 10
    top_value = nice_max(max(values.values(), default=0))
    plot_w = width - label_w - 60
    body = []
    for k, (label, value) in enumerate(values.items()):
        y = top + k * (bar_height + gap)
        w = plot_w * value / top_value
        body.append(
            f"<text x='{label_w - 8}' y='{y + bar_height * 0.7:.1f}' {FONT} "
            f"text-anchor='end'>{escape(label)}</text>"
            f"<rect x='{label_w}' y='{y}' width='{w:.1f}' height='{bar_height}' "
            f"fill='{PALETTE[k % len(PALETTE)]}'/>"
            f"<text x='{label_w + w + 6:.1f}' y='{y + bar_height * 0.7:.1f}' {FONT}>"
            f"{_tick_label(value)}</text>"
        )
    return _svg(width, height, title, body)
