"""Server-rendered SVG trend charts (pure: takes numbers, returns markup; no ORM, no JS).

Small and readable on a phone: one line per series, reference lines for targets, the last
value labelled. Text is escaped; sizes are in the viewBox so the chart scales with the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from html import escape

WIDTH, HEIGHT = 600, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 24, 36
COLOURS = ("#1f6feb", "#d1242f", "#1a7f37")


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[tuple[datetime, Decimal | float]]


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str
    series: Sequence[Series]
    targets: Sequence[tuple[float, str]] = field(default_factory=tuple)


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def render_svg(chart: Chart) -> str:
    points = [(t, float(v)) for s in chart.series for t, v in s.points]
    title = escape(chart.title)
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{title}" class="trend">'
        f"<title>{title}</title>"
        f'<text x="{LEFT}" y="16" font-size="14" font-weight="bold">{title} '
        f"({escape(chart.unit)})</text>"
    )
    if not points:
        return head + f'<text x="{LEFT}" y="{HEIGHT // 2}" font-size="14">–</text></svg>'
    values = [v for _t, v in points] + [t for t, _l in chart.targets]
    low, high = min(values), max(values)
    pad = max((high - low) * 0.1, 1.0)
    low, high = low - pad, high + pad
    times = [t.timestamp() for t, _v in points]
    t0, t1 = min(times), max(times)
    span = max(t1 - t0, 1.0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: datetime) -> float:
        return LEFT + (t.timestamp() - t0) / span * plot_w if t1 > t0 else LEFT + plot_w / 2

    def y(v: float) -> float:
        return TOP + (high - v) / (high - low) * plot_h

    parts = [head]
    parts.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#d0d7de"/>'
    )
    for value in (low + pad, high - pad):
        parts.append(
            f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" font-size="12" '
            f'text-anchor="end">{_fmt(value)}</text>'
        )
    for value, label in chart.targets:
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            'stroke="#9a6700" stroke-dasharray="6 4" class="target"/>'
            f'<text x="{WIDTH - RIGHT - 4}" y="{y(value) - 4:.1f}" font-size="11" '
            f'text-anchor="end" fill="#9a6700">{escape(label)} {_fmt(value)}</text>'
        )
    first, last = min(t for t, _v in points), max(t for t, _v in points)
    parts.append(
        f'<text x="{LEFT}" y="{HEIGHT - 12}" font-size="12">{first:%Y-%m-%d}</text>'
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 12}" font-size="12" '
        f'text-anchor="end">{last:%Y-%m-%d}</text>'
    )
    for i, series in enumerate(chart.series):
        colour = COLOURS[i % len(COLOURS)]
        coords = [(x(t), y(float(v))) for t, v in series.points]
        if not coords:
            continue
        path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2.5" '
            f'class="series" data-label="{escape(series.label)}"/>'
        )
        for cx, cy in coords:
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" fill="{colour}"/>')
        lx, ly = coords[-1]
        parts.append(
            f'<text x="{min(lx + 6, WIDTH - RIGHT - 30):.1f}" y="{ly - 6:.1f}" font-size="13" '
            f'fill="{colour}">{escape(series.label)} {_fmt(float(series.points[-1][1]))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
