"""One Prometheus exposition for a process group: each child's ``/metrics`` text, every
sample labelled ``process="<index>"`` so the children's series do not collide.

A metric family must appear once in an exposition (one ``# HELP``/``# TYPE`` and all its
samples together), so the children's texts are parsed, merged family by family and
rendered again, not just concatenated. (prometheus_client's multiprocess mode is no option:
it supports neither custom collectors nor ``Gauge.set_function``, and ``metrics.py`` uses
both.)"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

PROCESS_LABEL = "process"


def merge(expositions: Mapping[int, str]) -> bytes:
    """The children's texts (by process index) as one text, in the latest text format. A
    text that does not parse (a child cut off mid-reply) is left out, like a failed scrape."""
    families: dict[str, Metric] = {}
    for index, text in sorted(expositions.items()):
        try:
            parsed = list(text_string_to_metric_families(text))
        except ValueError:
            continue
        for family in parsed:
            merged = families.setdefault(
                family.name, Metric(family.name, family.documentation, family.type, family.unit)
            )
            merged.samples.extend(_labelled(family.samples, str(index)))
    registry = CollectorRegistry()
    registry.register(_Families(list(families.values())))
    return generate_latest(registry)


def _labelled(samples: Iterable[Sample], index: str) -> Iterable[Sample]:
    for sample in samples:
        yield sample._replace(labels={**sample.labels, PROCESS_LABEL: index})


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families
