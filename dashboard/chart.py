"""The send-rate chart as inline SVG, drawn on the server: no chart script, no JavaScript."""

from __future__ import annotations

from datetime import UTC, datetime

from markupsafe import Markup

from mailfleet.shared.send_history import SLOT_SECONDS, RatePoint

_WIDTH, _HEIGHT, _LEFT, _BOTTOM, _TOP = 720, 170, 48, 22, 10


def _nice_ceiling(value: float) -> float:
    """The axis top: 1, 2 or 5 times a power of ten, at least ``value`` (and at least 1)."""
    step = 1.0
    while step * 10 <= value:
        step *= 10
    for factor in (1, 2, 5, 10):
        if value <= step * factor:
            return step * factor
    return step * 10


def rate_chart(points: list[RatePoint]) -> Markup:
    """Bars of deliveries per second, one per 10-second slot, the axis labelled in /s."""
    peak = _nice_ceiling(max((point.per_second for point in points), default=0.0))
    plot_w, plot_h = _WIDTH - _LEFT - 4, _HEIGHT - _BOTTOM - _TOP
    bar_w = plot_w / max(len(points), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" '
        f'aria-label="send rate over the last {len(points) * SLOT_SECONDS // 60} minutes">',
        f'<line class="axis" x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{_WIDTH - 4}" '
        f'y2="{_TOP + plot_h}"/>',
        f'<text class="label" x="{_LEFT - 6}" y="{_TOP + 8}" text-anchor="end">{peak:g}/s</text>',
        f'<text class="label" x="{_LEFT - 6}" y="{_TOP + plot_h}" text-anchor="end">0</text>',
    ]
    for index, point in enumerate(points):
        height = plot_h * point.per_second / peak
        x = _LEFT + index * bar_w
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{_TOP + plot_h - height:.1f}" '
            f'width="{max(bar_w - 1, 1):.1f}" height="{height:.1f}">'
            f"<title>{_clock(point.start)}: {point.per_second:.1f}/s</title></rect>"
        )
    if points:
        for index, anchor in ((0, "start"), (len(points) // 2, "middle"), (len(points), "end")):
            start = points[0].start + index * SLOT_SECONDS
            parts.append(
                f'<text class="label" x="{_LEFT + index * bar_w:.1f}" y="{_HEIGHT - 6}" '
                f'text-anchor="{anchor}">{_clock(start)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (numbers and times only, no outside text)


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S")
