"""The one place the PromQL evaluator meets the store: series selection and bucket reads.

Selection asks the index for named metrics (:mod:`appliance.index.catalog`) and labels
them exactly as ``/metrics`` does (:func:`appliance.api.prometheus.series_labels`); reads
flush every selected file in one rrdcached batch and read each file's archive as an array
(:mod:`appliance.api.series`). Kept thin so it can follow the storage API as it moves.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence

import numpy as np

from appliance.api import series as measures
from appliance.api.prometheus import exposed_name, series_labels
from appliance.index.catalog import named_metrics
from appliance.model import Kind, Metric
from appliance.promql import Block, Matcher, SeriesInfo
from appliance.storage.policy import ArchivePolicy
from appliance.store import Store


def _like(name: str) -> list[str]:
    """LIKE patterns of the meter names that may be exposed as ``name``."""
    stems = {name}
    if name.endswith("_total"):
        stems.add(name.removesuffix("_total"))
    for stem in list(stems):
        if stem[:1] in ("_", "x"):  # prometheus_name's prefixes for odd first characters
            stems.add(stem[1:])
    return sorted(s for s in stems if s)


def best_granularity(policy: ArchivePolicy, start: float, step: float, now: float) -> int:
    """The coarsest granularity not coarser than ``step`` that still holds ``start``;
    failing that, the finest that holds it; failing that, the longest-kept one."""
    items = sorted(policy.definition, key=lambda i: i.granularity)
    holding = [i.granularity for i in items if now - i.timespan <= start]
    fine = [g for g in holding if g <= step]
    if fine:
        return fine[-1]
    if holding:
        return holding[0]
    return max(items, key=lambda i: i.timespan).granularity


class StoreSource:
    """:class:`appliance.promql.Source` over one store, for one request."""

    def __init__(self, store: Store, now: float | None = None):
        self.store = store
        self.now = time.time() if now is None else now

    def catalogue(self, name: str | None = None) -> list[SeriesInfo]:
        """Every named metric as a series (or those exposed as ``name``)."""
        rows = named_metrics(self.store.index, None if name is None else _like(name))
        out = []
        for row in rows:
            counter = row["kind"] == Kind.CUMULATIVE.value
            exposed = exposed_name(row["name"], counter)
            if name is not None and exposed != name:
                continue
            attributes = json.loads(row["attributes"] or "{}")
            labels = {"__name__": exposed}
            labels.update((k, v) for k, v in series_labels(
                row["resource_id"], row["type"], row["id"], attributes).items() if v)
            metric = Metric(row["id"], row["name"], row["unit"], Kind(row["kind"]),
                            row["resource_id"], row["archive_policy_name"], row["created_at"],
                            row["creator"])
            out.append(SeriesInfo(labels, counter, metric))
        return out

    def select(self, matchers: Sequence[Matcher]) -> list[SeriesInfo]:
        name = next((m.value for m in matchers if m.label == "__name__" and m.op == "="), None)
        return [s for s in self.catalogue(name)
                if all(m.matches(s.labels.get(m.label, "")) for m in matchers)]

    def read(self, series: Sequence[SeriesInfo], method: str, start: float, stop: float,
             step: float) -> tuple[list[Block], list[str]]:
        metrics: list[Metric] = [s.ref for s in series]  # type: ignore[misc]
        measures.flush_many(self.store, metrics)
        policies = self.store.index.policies_for({m.archive_policy_name for m in metrics})
        by_grain: dict[tuple[int, str], list[int]] = {}
        warnings = []
        for i, m in enumerate(metrics):
            policy = policies[m.archive_policy_name]
            g = best_granularity(policy, start, step, self.now)
            if g > step:
                warnings.append(f"{m.archive_policy_name} policy: served from {g} s buckets, "
                                f"coarser than the step of {step:g} s")
            aggregation = method if method in policy.aggregation_methods else "mean"
            by_grain.setdefault((g, aggregation), []).append(i)
        blocks = []
        for (g, aggregation), rows in by_grain.items():
            first = math.floor(start / g) * g - g
            count = max(0, math.floor(stop / g) * g - first) // g + 1
            values = np.full((len(rows), int(count)), np.nan)
            for r, i in enumerate(rows):
                times, vals = measures.read(self.store, metrics[i], aggregation, g, first,
                                            stop + 1)
                if len(times):
                    at = ((times - first) // g).astype(np.int64)
                    ok = (at >= 0) & (at < count)
                    values[r, at[ok]] = vals[ok]
            blocks.append(Block(float(g), float(first), values, rows))
        return blocks, warnings
