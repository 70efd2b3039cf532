"""The filters of ``mailfleet dlq`` as text, checked and turned into a :class:`Selection`:
the command line and the dashboard's forms go through the same rules."""

from __future__ import annotations

from collections.abc import Iterable

from mailfleet.producer.ops.dlq.letter import REASONS, Selection
from mailfleet.shared.durations import parse_duration
from mailfleet.shared.job import Lane

LANES = tuple(lane.value for lane in Lane)


class FilterError(ValueError):
    """A filter value that is not allowed; the message names the filter and the value."""


def _clean(values: Iterable[str] | None) -> list[str]:
    return [value.strip() for value in values or () if value and value.strip()]


def build_selection(
    *,
    reasons: Iterable[str] | None = None,
    lanes: Iterable[str] | None = None,
    domains: Iterable[str] | None = None,
    ids: Iterable[str] | None = None,
    older_than: str | float | None = None,
) -> Selection:
    """A :class:`Selection` from filter values; blank values are no filter."""
    reason_list, lane_list = _clean(reasons), _clean(lanes)
    for name, values, allowed in (("reason", reason_list, REASONS), ("lane", lane_list, LANES)):
        for value in values:
            if value not in allowed:
                raise FilterError(f"{name} {value!r} is not one of {', '.join(allowed)}")
    age: float | None
    if isinstance(older_than, str):
        try:
            age = parse_duration(older_than) if older_than.strip() else None
        except ValueError as exc:
            raise FilterError(f"older-than: {exc}") from exc
    else:
        age = older_than
    return Selection(
        reasons=frozenset(reason_list),
        lanes=frozenset(lane_list),
        domains=frozenset(domain.lower() for domain in _clean(domains)),
        ids=frozenset(_clean(ids)),
        older_than=age,
    )
