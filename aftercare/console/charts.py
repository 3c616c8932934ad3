"""The pain-score chart: a small SVG drawn on the server, so it needs no script and prints.

Scores run 0-10 up the side; time runs along the bottom, spaced by when each score came in.
The urgent line (7) is drawn dashed. The SVG carries a title and a description listing every
score in words, and the page shows the same scores as a table for screen readers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from xml.sax.saxutils import escape

from markupsafe import Markup

from aftercare.console.timefmt import patient_local
from aftercare.planner import zone
from aftercare.replies import PAIN_URGENT_AT

WIDTH, HEIGHT = 480, 200
LEFT, RIGHT, TOP, BOTTOM = 36, 16, 12, 28  # margins inside the drawing


@dataclass(frozen=True)
class Score:
    at: datetime
    score: int


def pain_chart(scores: Sequence[Score], tz: str) -> Markup:
    """An inline SVG of the scores over time (an empty string when there are none)."""
    if not scores:
        return Markup("")
    points = sorted(scores, key=lambda s: s.at)
    first, last = points[0].at, points[-1].at
    span = (last - first).total_seconds() or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(at: datetime) -> float:
        if len(points) == 1:
            return LEFT + plot_w / 2
        return LEFT + plot_w * (at - first).total_seconds() / span

    def y(score: int) -> float:
        return TOP + plot_h * (10 - score) / 10

    words = "; ".join(f"{p.score} on {patient_local(p.at, tz)}" for p in points)
    parts = [
        f'<svg class="pain-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="pain-title pain-desc" xmlns="http://www.w3.org/2000/svg">',
        '<title id="pain-title">Pain scores over time</title>',
        f'<desc id="pain-desc">{escape(words)}</desc>',
    ]
    for tick in (0, 5, 10):
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" '
            f'y2="{y(tick):.1f}"/><text class="axis" x="{LEFT - 8}" y="{y(tick) + 4:.1f}" '
            f'text-anchor="end">{tick}</text>'
        )
    parts.append(
        f'<line class="urgent-line" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(PAIN_URGENT_AT):.1f}" '
        f'y2="{y(PAIN_URGENT_AT):.1f}" stroke-dasharray="4 4"/>'
        f'<text class="axis" x="{LEFT + 4}" y="{y(PAIN_URGENT_AT) - 4:.1f}" '
        f'text-anchor="start">urgent ({PAIN_URGENT_AT}+)</text>'
    )
    path = " ".join(f"{x(p.at):.1f},{y(p.score):.1f}" for p in points)
    parts.append(f'<polyline class="pain-line" fill="none" points="{path}"/>')
    for p in points:
        urgent = " urgent" if p.score >= PAIN_URGENT_AT else ""
        label = escape(f"{p.score} on {patient_local(p.at, tz)}")
        parts.append(
            f'<circle class="pain-point{urgent}" cx="{x(p.at):.1f}" cy="{y(p.score):.1f}" r="5">'
            f"<title>{label}</title></circle>"
        )
    # The first and last dates under the axis, anchored inward so neither is cut off.
    ends = [(points[0], "start"), (points[-1], "end")] if len(points) > 1 else []
    for p, anchor in ends or [(points[0], "middle")]:
        parts.append(
            f'<text class="axis" x="{x(p.at):.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}">'
            f"{escape(p.at.astimezone(zone(tz)).strftime('%b %-d'))}</text>"
        )
    parts.append("</svg>")
    # Every value put into the markup above is a number or went through escape().
    return Markup("".join(parts))
