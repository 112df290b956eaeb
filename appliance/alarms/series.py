"""What rules read from the store during one evaluation round, each metric read once.

``RoundReader.prepare(rules)`` resolves every rule's metrics with a few batched index
queries, flushes all their files from rrdcached in one BATCH, and computes the widest window
each ``(metric, aggregation, granularity)`` needs; each is then fetched at most once, however
many alarms use it. Forecasts and moving averages are computed by rrdtool itself
(``PREDICT``/``PREDICTSIGMA`` and ``TREND`` CDEFs through ``rrdtool.xport``) over the metric's
existing RRA, so they need no change to the file.
"""

from __future__ import annotations

import json
import logging
import statistics
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from appliance.index import Index
from appliance.index.query import QueryError, compile_query
from appliance.model import ArchivePolicy, Metric, resource_id_for
from appliance.storage.measures import Measures
from appliance.storage.rrdcached import RrdcachedError

log = logging.getLogger(__name__)

#: How points of several metrics at one timestamp combine, per the rule's aggregation
#: method (Aodh asks Gnocchi for ``(aggregate <method> (metric ... <method>))``); ``last``
#: has no meaning across metrics and combines as the mean.
ACROSS = {"mean": statistics.fmean, "min": min, "max": max, "last": statistics.fmean}
#: Aodh reads one granularity more than the evaluation periods (its ``look_back``).
LOOK_BACK = 1
#: Rule types that read plain fetched points (the others go through xport).
FETCHED = ("gnocchi_resources_threshold", "gnocchi_aggregation_by_metrics_threshold",
           "gnocchi_aggregation_by_resources_threshold")


class RuleError(LookupError):
    """A rule's metric or resources cannot be found: the alarm has insufficient data."""


@dataclass(frozen=True, slots=True)
class Band:
    """A forecast rule's window: values and the predicted band around each."""

    values: list[float]
    predicted: list[float]
    sigma: list[float]


def resolve_resource_id(value: str) -> str:
    """A resource id as given to Aodh: a UUID, or an original id mapped like the pollsters'."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return resource_id_for(value)


def window(rule: dict[str, Any], now: float) -> tuple[float, float]:
    """The ``(start, stop)`` a threshold rule reads: Aodh's evaluation periods + look-back."""
    span = rule["granularity"] * (rule["evaluation_periods"] + LOOK_BACK)
    return now - span, now


class RoundReader:
    """Reads for one round at one ``now``; create a new one for every round."""

    def __init__(self, index: Index, measures: Measures, now: float):
        self.index = index
        self.measures = measures
        self.now = now
        self._metrics: dict[str, Metric] = {}
        self._policies: dict[str, ArchivePolicy] = {}
        self._by_resource: dict[tuple[str, str], str] = {}
        self._queries: dict[tuple[str, str, str], list[str]] = {}
        self._starts: dict[tuple[str, str, int], float] = {}
        self._fetched: dict[tuple[str, str, int], dict[int, float]] = {}
        self.fetches = 0

    # --- planning ---------------------------------------------------------------------------

    def prepare(self, rules: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Resolve metrics of every ``(type, rule)`` and flush their files in one batch."""
        rules = list(rules)
        wanted_resources = {
            resolve_resource_id(r["resource_id"])
            for t, r in rules if t == "gnocchi_resources_threshold"
        }
        for rid, names in self.index.resource_metrics(sorted(wanted_resources)).items():
            for name, metric_id in names.items():
                self._by_resource[(rid, name)] = metric_id
        for t, r in rules:
            if t == "gnocchi_aggregation_by_resources_threshold":
                self._resolve_query(r)
        ids = set(self._by_resource.values())
        ids.update(i for ids_ in self._queries.values() for i in ids_)
        for t, r in rules:
            if t == "gnocchi_aggregation_by_metrics_threshold":
                ids.update(r["metrics"])
            elif "metric" in r and t not in FETCHED:
                ids.add(r["metric"])
        self._metrics = self.index.metrics_by_id(ids)
        self._policies = self.index.policies_for(
            {m.archive_policy_name for m in self._metrics.values()}
        )
        for t, r in rules:
            if t in FETCHED:
                start, _ = window(r, self.now)
                for metric_id in self._metric_ids(t, r, missing_ok=True):
                    key = (metric_id, r["aggregation_method"], r["granularity"])
                    self._starts[key] = min(start, self._starts.get(key, start))
        self._flush(self._metrics.values())

    def _resolve_query(self, rule: dict[str, Any]) -> None:
        key = (rule["resource_type"], rule["query"], rule["metric"])
        if key in self._queries:
            return
        try:
            where, params = compile_query(json.loads(rule["query"]))
        except QueryError as exc:
            log.warning("alarm query %s is invalid: %s", rule["query"], exc)
            self._queries[key] = []
            return
        self._queries[key] = self.index.metric_repo.ids_on_matching_resources(
            rule["metric"], rule["resource_type"], where, params)

    def _flush(self, metrics: Iterable[Metric]) -> None:
        """One rrdcached BATCH of FLUSH commands: reads then see every acknowledged write."""
        try:
            self.measures.flush_many(m.id for m in metrics)
        except (OSError, RrdcachedError) as exc:
            log.warning("cannot flush rrdcached before evaluating (%s); reading the files", exc)

    def _metric_ids(self, type_: str, rule: dict[str, Any], missing_ok: bool = False) -> list[str]:
        if type_ == "gnocchi_resources_threshold":
            key = (resolve_resource_id(rule["resource_id"]), rule["metric"])
            ids = [self._by_resource[key]] if key in self._by_resource else []
        elif type_ == "gnocchi_aggregation_by_metrics_threshold":
            ids = [i for i in rule["metrics"] if i in self._metrics]
        elif type_ == "gnocchi_aggregation_by_resources_threshold":
            ids = self._queries.get((rule["resource_type"], rule["query"], rule["metric"]), [])
        else:
            ids = [rule["metric"]] if rule["metric"] in self._metrics else []
        if not ids and not missing_ok:
            raise RuleError(f"no metric found for the {type_} rule")
        return ids

    # --- reading ----------------------------------------------------------------------------

    def _points(self, metric_id: str, aggregation: str, granularity: int) -> dict[int, float]:
        key = (metric_id, aggregation, granularity)
        if key not in self._fetched:
            metric = self._metrics[metric_id]
            policy = self._policies[metric.archive_policy_name]
            if granularity not in policy.granularities or aggregation not in \
                    policy.aggregation_methods:
                raise RuleError(f"metric {metric_id} keeps no {aggregation} at {granularity}s")
            self._fetched[key] = dict(self.measures.fetch(
                metric, policy, aggregation, granularity,
                self._starts.get(key, window({"granularity": granularity,
                                              "evaluation_periods": 1}, self.now)[0]),
                self.now, flush=False,
            ))
            self.fetches += 1
        return self._fetched[key]

    def values(self, type_: str, rule: dict[str, Any]) -> list[float]:
        """A threshold rule's points in its window, oldest first (aggregated across metrics)."""
        if type_ == "rrd_moving_average_threshold":
            return self._moving_average(rule)
        start, _ = window(rule, self.now)
        series = [self._points(i, rule["aggregation_method"], rule["granularity"])
                  for i in self._metric_ids(type_, rule)]
        stamps = sorted({ts for s in series for ts in s if ts + rule["granularity"] > start})
        if len(series) == 1:
            return [series[0][ts] for ts in stamps]
        combine = ACROSS[rule["aggregation_method"]]
        return [combine([s[ts] for s in series if ts in s]) for ts in stamps]

    def _xport(self, type_: str, rule: dict[str, Any], history: int, cdefs: list[str],
               exports: list[str]) -> list[tuple[float | None, ...]]:
        """Rows of ``rrdtool xport`` over the rule's window, the DEF reaching ``history``
        seconds further back (PREDICT and TREND read data before the window)."""
        (metric_id,) = self._metric_ids(type_, rule)
        g = rule["granularity"]
        start, stop = window(rule, self.now)
        start, stop = int(start // g) * g, int(stop // g) * g
        result = self.measures.xport(metric_id, rule["aggregation_method"], start, stop, g,
                                     history, cdefs, exports)
        if result is None:
            return []
        step, rows = result
        if step != g:
            raise RuleError(f"metric {metric_id} keeps no {rule['aggregation_method']} at {g}s")
        self.fetches += 1
        return rows

    def _moving_average(self, rule: dict[str, Any]) -> list[float]:
        rows = self._xport("rrd_moving_average_threshold", rule, rule["window"],
                           [f"CDEF:ma=v,{rule['window']},TREND"], ["ma"])
        return [row[0] for row in rows if row[0] is not None]

    def band(self, rule: dict[str, Any]) -> Band:
        """Values with PREDICT/PREDICTSIGMA over the same time in the previous seasons."""
        shifts = ",".join(str(rule["season"] * k) for k in range(rule["seasons"], 0, -1))
        args = f"{shifts},{rule['seasons']},{rule['window']},v"
        rows = self._xport(
            "rrd_forecast", rule, rule["season"] * rule["seasons"] + rule["window"],
            [f"CDEF:p={args},PREDICT", f"CDEF:s={args},PREDICTSIGMA"], ["v", "p", "s"],
        )
        known = [r for r in rows if None not in r]
        return Band([r[0] for r in known], [r[1] for r in known], [r[2] for r in known])
