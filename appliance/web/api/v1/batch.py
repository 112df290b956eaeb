"""``/v1/batch/metrics/measures`` and ``/v1/batch/resources/metrics/measures``.

The fast write path: the body is parsed once, metrics are looked up with a few ``IN``
queries (never one per measure), repeated timestamps are parsed once, and every point goes
to RRD in one ``Store.write_measures`` call (one rrdcached batch). The bodies' models are
their documentation; measures are checked by ``ingest.parse_measures``, a hand loop, because
validating each measure through pydantic is 3x slower than the whole parse (benchmarks/README).
"""

from __future__ import annotations

from typing import Annotated, Any

from flask import Blueprint
from pydantic import BaseModel, Field

from appliance.model import Metric
from appliance.web.api import ingest, jsonio
from appliance.web.api.errors import ApiError, bad_param
from appliance.web.api.ingest import WriteReport
from appliance.web.api.openapi import Named, operation, query
from appliance.web.api.params import bool_arg, parse_uuid
from appliance.web.api.v1 import metrics as metric_views
from appliance.web.api.v1.metrics import Measure
from appliance.web.api.v1.resources import resolve_id
from appliance.web.context import get_store

bp = Blueprint("batch", __name__)

Measures = Annotated[list[Measure], Field(max_length=1000)]


class MeasuresEntry(BaseModel):
    """A metric's entry as an object: its measures and, for a metric created by the write
    (``create_metrics=true``), its archive policy and unit."""

    measures: Measures
    archive_policy_name: str | None = None
    unit: str | None = None


Entry = Measures | MeasuresEntry
BY_METRIC = Named("BatchByMetric", Annotated[dict[str, Entry], Field(max_length=50)])
BY_RESOURCE = Named("BatchByResource", Annotated[
    dict[str, Annotated[dict[str, Entry], Field(max_length=20)]], Field(max_length=20)])


def _measures_of(name: str, value: Any) -> Any:
    """A metric's entry: a list of measures, or ``{"measures": [...], ...}``."""
    if isinstance(value, dict):
        if "measures" not in value:
            raise bad_param(name, "needs a 'measures' list")
        return value["measures"]
    return value


def _object(body: Any) -> dict:
    if not isinstance(body, dict):
        raise bad_param("body", "must be a JSON object")
    return body


@bp.post("/batch/metrics/measures")
@operation(WriteReport, status=202, body=BY_METRIC)
def batch_metrics():
    """Write measures to many metrics by id."""
    body = _object(jsonio.body())
    ids = {key: parse_uuid(f"metric {key}", key) for key in body}
    known = get_store().index.metrics_by_id(set(ids.values()))
    missing = sorted(key for key, mid in ids.items() if mid not in known)
    if missing:
        raise ApiError(400, f"Unknown metrics: {', '.join(missing[:100])}")
    timestamps = ingest.TimestampParser()
    items = [
        (known[ids[key]], ingest.parse_measures(key, _measures_of(key, value), timestamps))
        for key, value in body.items()
    ]
    return ingest.write(items)


@bp.post("/batch/resources/metrics/measures")
@operation(WriteReport, status=202, body=BY_RESOURCE,
           params=(query("create_metrics", {"type": "boolean"}),))
def batch_resources():
    """Write measures to many resources' metrics by name."""
    create = bool_arg("create_metrics")
    body = _object(jsonio.body())
    store = get_store()
    rids = {key: resolve_id(f"resource {key}", key) for key in body}
    existing = store.index.resource_metrics(list(rids.values()))
    found = store.index.resource_repo.existing(list(rids.values()))
    unknown = sorted(key for key, rid in rids.items() if rid not in found)
    if unknown:
        raise ApiError(400, f"Unknown resources: {', '.join(unknown[:100])}")
    metrics = store.index.metrics_by_id(
        mid for names in existing.values() for mid in names.values()
    )
    timestamps = ingest.TimestampParser()
    items: list[tuple[Metric, list]] = []
    missing: list[str] = []
    for key, per_metric in body.items():
        if not isinstance(per_metric, dict):
            raise bad_param(f"resource {key}", "must be an object {metric name: measures}")
        rid = rids[key]
        for name, value in per_metric.items():
            label = f"{key}/{name}"
            mid = existing[rid].get(name)
            if mid is None:
                if not create:
                    missing.append(label)
                    continue
                spec = value if isinstance(value, dict) else {}
                m = metric_views.create_metric(
                    {"name": name, "unit": spec.get("unit"),
                     "archive_policy_name": spec.get("archive_policy_name")},
                    rid,
                )
            else:
                m = metrics[mid]
            items.append((m, ingest.parse_measures(label, _measures_of(label, value), timestamps)))
    if missing:
        raise ApiError(400, f"Unknown metrics: {', '.join(missing[:100])}")
    return ingest.write(items)
