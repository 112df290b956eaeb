"""``/metrics``: Prometheus text exposition of every metric's latest value and of our health.

Names and labels come from :mod:`appliance.promnames` (shared with the remote-write
publisher); a counter's value is the raw counter RRD keeps as the last update. The
appliance's own health is under ``appliance_``: per source and target poll duration,
errors and last success, the write counters, rrdcached's queue.

Latest values come from the store's :meth:`~appliance.storage.measures.Measures.last_values`
(one batched flush, then each file's header), so thousands of metrics cost milliseconds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from appliance import scaleout
from appliance.model import Kind
from appliance.promnames import FIXED_LABELS, attribute_labels, prometheus_name
from appliance.storage.rrdcached import RrdcachedError
from appliance.store import Store
from appliance.web.api.openapi import operation
from appliance.web.context import get_store

bp = Blueprint("prometheus", __name__)

#: rrdcached STATS fields that are levels (the rest only grow).
RRDCACHED_GAUGES = {"QueueLength", "TreeNodesNumber", "TreeDepth"}


def help_text(meter: str, unit: str | None) -> str:
    """A family's HELP: the meter's own name and its unit (the query API's metadata too)."""
    return f"{meter} ({unit or 'unitless'})"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class ApplianceCollector:
    """A prometheus-client collector over one store, read at scrape time."""

    def __init__(self, store: Store):
        self.store = store

    def collect(self) -> Iterator[Metric]:
        yield from self._meters()
        yield from self._sources()
        yield from self._counters()
        yield from self._rrdcached()
        yield from scaleout.metric_families(self.store.settings)

    def _meters(self) -> Iterator[Metric]:
        store = self.store
        rows = store.index.metric_repo.named_with_resources()
        values = store.measures.last_values([row["id"] for row in rows])
        families: dict[str, tuple[str, list]] = {}
        for row in rows:
            value = values.get(row["id"])
            if value is None:
                continue  # no measure yet
            counter = row["kind"] == Kind.CUMULATIVE.value
            name = prometheus_name(row["name"])
            kind, samples = families.setdefault(name, ("counter" if counter else "gauge", []))
            if kind != ("counter" if counter else "gauge"):
                continue  # one name, one type: the first kind seen wins
            samples.append((row, value))
        for name, (kind, samples) in families.items():
            yield self._family(name, kind, samples)

    @staticmethod
    def _family(name: str, kind: str, samples: list) -> Metric:
        attrs = [json.loads(row["attributes"] or "{}") for row, _ in samples]
        label_of: dict[str, str] = {}
        for a in attrs:
            for key, label in attribute_labels(a).items():
                label_of.setdefault(key, label)
        labels = list(FIXED_LABELS) + sorted(set(label_of.values()))
        doc = help_text(samples[0][0]["name"], samples[0][0]["unit"])
        cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
        family = cls(name, doc, labels=labels)
        for (row, value), a in zip(samples, attrs, strict=True):
            by_label = {label_of[k]: "" if v is None else str(v) for k, v in a.items()
                        if k in label_of}
            values = [row["resource_id"] or "", row["type"] or "", row["id"]]
            values += [by_label.get(label, "") for label in labels[len(FIXED_LABELS):]]
            family.add_metric(values, float(value))
        return family

    def _sources(self) -> Iterator[Metric]:
        labels = ["source", "target"]
        duration = GaugeMetricFamily("appliance_poll_duration_seconds",
                                     "Duration of the last poll of a target", labels=labels)
        up = GaugeMetricFamily("appliance_poll_up", "1 if the last poll of a target succeeded",
                               labels=labels)
        last = GaugeMetricFamily("appliance_poll_last_success_timestamp_seconds",
                                 "When a target was last polled successfully", labels=labels)
        samples = GaugeMetricFamily("appliance_poll_samples",
                                    "Samples the last poll of a target produced", labels=labels)
        polls = CounterMetricFamily("appliance_polls", "Polls of a target", labels=labels)
        errors = CounterMetricFamily("appliance_poll_errors", "Failed polls of a target",
                                     labels=labels)
        for s in self.store.index.source_status():
            key = [s["source"], s["target"]]
            duration.add_metric(key, s["duration"])
            up.add_metric(key, 0.0 if s["last_error"] else 1.0)
            if s["last_success"] is not None:
                last.add_metric(key, s["last_success"])
            samples.add_metric(key, s["samples"])
            polls.add_metric(key, s["polls"])
            errors.add_metric(key, s["errors"])
        yield from (duration, up, last, samples, polls, errors)

    def _counters(self) -> Iterator[Metric]:
        self.store.flush_counters()
        for name, value in sorted(self.store.index.counters().items()):
            yield CounterMetricFamily(f"appliance_{prometheus_name(name)}",
                                      f"Appliance counter {name}", value=value)
        counts = self.store.index.counts()
        yield GaugeMetricFamily("appliance_resources", "Resources in the index",
                                value=counts["resources"])
        yield GaugeMetricFamily("appliance_metrics", "Metrics in the index",
                                value=counts["metrics"])

    def _rrdcached(self) -> Iterator[Metric]:
        try:
            stats = self.store.rrdcached_stats()
        except (OSError, RrdcachedError):
            stats = None
        yield GaugeMetricFamily("appliance_rrdcached_up", "1 if rrdcached answered",
                                value=0.0 if stats is None else 1.0)
        for key, value in sorted((stats or {}).items()):
            name = f"appliance_rrdcached_{_snake(key)}"
            if key in RRDCACHED_GAUGES:
                yield GaugeMetricFamily(name, f"rrdcached {key}", value=value)
            else:
                yield CounterMetricFamily(name, f"rrdcached {key}", value=value)


def exposition(store: Store) -> bytes:
    """The whole exposition as bytes (also usable outside a request)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ApplianceCollector(store))
    return generate_latest(registry)


@bp.get("/metrics")
@operation(content={"text/plain": {"schema": {"type": "string"}}})
def metrics():
    """Prometheus text exposition: every metric's latest value and the appliance's health."""
    return Response(exposition(get_store()), mimetype=CONTENT_TYPE_LATEST)
