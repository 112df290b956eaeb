"""The one place the PromQL evaluator meets the store: series selection and bucket reads.

Selection asks the index's metric repository for named metrics
(:meth:`appliance.index.metrics.Metrics.named_with_resources`) and labels them exactly as
``/metrics`` does (:func:`appliance.promnames.series_labels`); reads go through the
store's read API: every selected file flushed in one rrdcached batch
(:meth:`~appliance.store.Store.flush_many`), then each group of metrics sharing a granularity
read as one array (:meth:`~appliance.store.Store.read_block`). Kept thin so it can follow
the storage API as it moves.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Sequence

import numpy as np

from appliance.model import ArchivePolicy, Kind, Metric
from appliance.promnames import series_labels, series_name
from appliance.promql import Block, Matcher, SeriesInfo
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


@functools.lru_cache(maxsize=1 << 16)
def _series(metric_id: str, meter: str, unit: str | None, kind: str, policy: str,
            resource_id: str | None, created_at: float, creator: str,
            resource_type: str | None, attributes: str | None) -> SeriesInfo:
    """One index row as a series, labelled as on ``/metrics``.

    Kept per row value (attributes as stored JSON): a dashboard asks for the same series
    again and again, and building labels cost more than reading their buckets. A changed
    attribute is a different row value, so nothing here goes stale. Callers never mutate
    the labels.
    """
    counter = kind == Kind.CUMULATIVE.value
    labels = {"__name__": series_name(meter, counter)}
    labels.update(series_labels(resource_id, resource_type, metric_id,
                                json.loads(attributes or "{}")))
    metric = Metric(metric_id, meter, unit, Kind(kind), resource_id, policy, created_at,
                    creator)
    return SeriesInfo(labels, counter, metric)


class StoreSource:
    """:class:`appliance.promql.Source` over one store, for one request."""

    def __init__(self, store: Store, now: float | None = None):
        self.store = store
        self.now = time.time() if now is None else now

    def catalogue(self, name: str | None = None) -> list[SeriesInfo]:
        """Every named metric as a series (or those exposed as ``name``)."""
        rows = self.store.index.metric_repo.named_with_resources(
            None if name is None else _like(name))
        out = []
        for row in rows:
            info = _series(*row)
            if name is None or info.labels["__name__"] == name:
                out.append(info)
        return out

    def select(self, matchers: Sequence[Matcher]) -> list[SeriesInfo]:
        name = next((m.value for m in matchers if m.label == "__name__" and m.op == "="), None)
        return [s for s in self.catalogue(name)
                if all(m.matches(s.labels.get(m.label, "")) for m in matchers)]

    def read(self, series: Sequence[SeriesInfo], method: str, start: float, stop: float,
             step: float) -> tuple[list[Block], list[str]]:
        metrics: list[Metric] = [s.ref for s in series]  # type: ignore[misc]
        self.store.flush_many(metrics)
        policies = self.store.index.policies_for({m.archive_policy_name for m in metrics})
        by_grain: dict[tuple[int, str], list[int]] = {}
        kept: dict[int, int] = {}  # granularity -> the longest any of these policies keeps it
        warnings = []
        by_policy: dict[str, list[int]] = {}  # the choice is the policy's: made once each
        for i, m in enumerate(metrics):
            by_policy.setdefault(m.archive_policy_name, []).append(i)
        for name, members in by_policy.items():
            policy = policies[name]
            g = best_granularity(policy, start, step, self.now)
            if g > step:
                warnings.append(f"{name} policy: served from {g} s buckets, "
                                f"coarser than the step of {step:g} s")
            aggregation = method if method in policy.aggregation_methods else "mean"
            by_grain.setdefault((g, aggregation), []).extend(members)
            span = next(item.timespan for item in policy.definition if item.granularity == g)
            kept[g] = max(kept.get(g, 0), span)
        blocks = []
        for (g, aggregation), rows in by_grain.items():
            rows.sort()  # series order kept: one block of every series is used as it is
            # Only what the archive can hold is allocated, whatever range was asked.
            first = math.floor(max(start, self.now - kept[g] - g) / g) * g - 2 * g
            count = max(0, (math.floor(min(stop, self.now) / g) * g - first) // g + 1)
            values = self.store.read_block([metrics[i] for i in rows], aggregation, g,
                                           int(first), int(count))
            blocks.append(Block(float(g), float(first), values, rows))
        return blocks, warnings

    def present(self, series: Sequence[SeriesInfo], start: float, end: float
                ) -> list[SeriesInfo]:
        """Those of ``series`` with samples in ``[start, end]`` (as Prometheus lists a series
        in ``/series``, ``/labels`` and ``/label/.../values`` only then), in their order.

        A series whose newest measure (its file's header) lies in the range has one. The
        others are read archive by archive, finest first, each over the part of the range
        it holds and no finer archive did: a series counts once a known bucket touches the
        range, so the answer is exact to one bucket of the finest archive holding that
        time (a coarse bucket can be unknown while the fine ones are not, by RRD's
        xfiles factor, hence finest first). A listing costs at most every bucket of the
        series' archives, and usually the recent few.
        """
        if not series:
            return []
        metrics: list[Metric] = [s.ref for s in series]  # type: ignore[misc]
        self.store.flush_many(metrics)
        newest = self.store.newest_measures(metrics)
        keep = [start <= newest.get(m.id, -math.inf) <= end for m in metrics]
        policies = self.store.index.policies_for({m.archive_policy_name for m in metrics})
        spans: dict[int, int] = {}
        for policy in policies.values():
            for item in policy.definition:
                spans[item.granularity] = max(spans.get(item.granularity, 0), item.timespan)
        upto = end  # the part of the range after this was read from finer archives
        for g in sorted(spans):
            todo = [i for i, k in enumerate(keep) if not k]
            lo = max(start, self.now - spans[g] + g)
            if not todo:
                break
            if lo > upto:
                continue
            blocks, _warnings = self.read([series[i] for i in todo], "mean", lo, upto, g)
            for b in blocks:
                labels = b.first + b.granularity * np.arange(b.values.shape[1])
                near = (labels > lo - b.granularity) & (labels < upto + b.granularity)
                seen = np.isfinite(b.values[:, near]).any(axis=1).tolist()
                for row, known in zip(b.rows, seen, strict=True):
                    keep[todo[row]] = keep[todo[row]] or known
            if lo <= start:  # the whole range was held here
                break
            upto = lo
        return [s for s, k in zip(series, keep, strict=True) if k]
