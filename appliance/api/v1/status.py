"""``/v1/status`` and ``/v1/capabilities``: Gnocchi's shapes plus the appliance's own health."""

from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify

from appliance.aggregation import REDUCERS
from appliance.api import get_store
from appliance.api.params import AGGREGATIONS
from appliance.index import rebuilds

bp = Blueprint("status", __name__)


@bp.get("/status")
def status():
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
            },
        }
    )


@bp.get("/capabilities")
def capabilities():
    return jsonify(
        {
            "aggregation_methods": list(AGGREGATIONS),
            # What /v1/aggregates computes across series (aggregate, resample, rolling).
            "dynamic_aggregation_methods": sorted(REDUCERS),
        }
    )
