"""``/v1/status`` and ``/v1/capabilities``: Gnocchi's shapes plus the appliance's own health."""

from __future__ import annotations

import time
from typing import Any, Literal

from flask import Blueprint, current_app, jsonify
from pydantic import BaseModel

from appliance import scaleout
from appliance.aggregation import REDUCERS
from appliance.index import rebuilds
from appliance.web.api.openapi import operation
from appliance.web.api.params import AGGREGATIONS
from appliance.web.context import get_settings, get_store

bp = Blueprint("status", __name__)


class Summary(BaseModel):
    metrics: int
    measures: int


class Storage(BaseModel):
    summary: Summary


class Metricd(BaseModel):
    processors: list[Any]


class SourceStatus(BaseModel):
    """One polled target: its last attempt and success (epoch seconds), and its totals."""

    source: str
    target: str
    last_attempt: float
    last_success: float | None
    duration: float
    samples: int
    last_error: str | None
    polls: int
    errors: int
    detail: dict[str, Any]


class StoreHealth(BaseModel):
    """Whether a write can be acknowledged now (:meth:`appliance.store.Store.health`).

    ``error`` says why rrdcached is unreachable (null while it is up); the disk figures are
    the data directory's file system, which a 507 answer means is full.
    """

    rrdcached: Literal["up", "unreachable"]
    error: str | None
    disk_free_bytes: int
    disk_total_bytes: int


class Appliance(BaseModel):
    version: str
    uptime: float
    resources: int
    metrics: int
    counters: dict[str, int]
    sources: list[SourceStatus]
    #: Archive policies changed in use: metric files still to rebuild, per policy.
    policy_rebuilds: dict[str, int]
    store: StoreHealth


class Status(BaseModel):
    """Gnocchi's status (no backlog: a write is readable on return) and the appliance's."""

    storage: Storage
    metricd: Metricd
    appliance: Appliance


class Capabilities(BaseModel):
    aggregation_methods: list[str]
    dynamic_aggregation_methods: list[str]


@bp.get("/status")
@operation(Status)
def status():
    """Gnocchi's status, plus the appliance's counts, counters and sources."""
    store = get_store()
    counts = store.index.counts()
    return jsonify(
        {
            # No asynchronous backlog: a write is readable on return, so nothing is pending.
            "storage": {"summary": {"metrics": 0, "measures": 0}},
            "metricd": {"processors": []},
            "appliance": {
                "version": current_app.extensions["appliance.version"],
                "uptime": time.time() - current_app.extensions["appliance.started"],
                "resources": counts["resources"],
                "metrics": counts["metrics"],
                "counters": store.index.counters(),
                "sources": store.index.source_status(),
                # Archive policies changed in use: metric files still to rebuild, per policy.
                "policy_rebuilds": rebuilds.progress(store.index),
                "coordination": scaleout.coordination(get_settings()),
                "publishers": scaleout.publishers(get_settings()),
                # Live, not stored: an outage shows here while it lasts.
                "store": store.health(),
            },
        }
    )


@bp.get("/capabilities")
@operation(Capabilities)
def capabilities():
    """The aggregation methods kept and computed."""
    return jsonify(
        {
            "aggregation_methods": list(AGGREGATIONS),
            # What /v1/aggregates computes across series (aggregate, resample, rolling).
            "dynamic_aggregation_methods": sorted(REDUCERS),
        }
    )
