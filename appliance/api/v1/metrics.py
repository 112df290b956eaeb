"""``/v1/metric``: metrics and their measures."""

from __future__ import annotations

from flask import Blueprint, jsonify

from appliance.api import get_store, serialize
from appliance.api.errors import bad_param, not_found
from appliance.api.params import (
    arg,
    iso,
    parse_aggregation,
    parse_duration,
    parse_int,
    parse_timestamp,
    parse_uuid,
)
from appliance.api.v1.pagination import link_next
from appliance.index import NotFound
from appliance.model import Metric

bp = Blueprint("metrics", __name__)

MAX_LIMIT = 1000


def load_metric(metric_id: str) -> Metric:
    try:
        return get_store().index.metric(parse_uuid("metric_id", metric_id))
    except NotFound:
        raise not_found(f"Metric {metric_id}") from None


def read_measures(metric: Metric) -> list[list]:
    """Gnocchi's ``[[timestamp, granularity, value], ...]`` for the request's parameters.

    Without ``granularity``, every granularity of the policy, coarsest first (Gnocchi's
    order). Cumulative meters read as per-second rates (they are stored as RRD DERIVE).
    """
    store = get_store()
    policy = store.index.policy(metric.archive_policy_name)
    aggregation = parse_aggregation(arg("aggregation"))
    if aggregation not in policy.aggregation_methods:
        raise bad_param(
            "aggregation",
            f"{aggregation!r} is not kept by archive policy {policy.name!r} "
            f"({', '.join(policy.aggregation_methods)})",
        )
    start = arg("start")
    stop = arg("stop")
    start_ts = parse_timestamp("start", start) if start else None
    stop_ts = parse_timestamp("stop", stop) if stop else None
    if start_ts is not None and stop_ts is not None and stop_ts < start_ts:
        raise bad_param("stop", "is before start")
    granularity = arg("granularity")
    if granularity is not None:
        g = parse_duration("granularity", granularity)
        if g not in policy.granularities:
            raise bad_param(
                "granularity",
                f"{granularity} is not a granularity of archive policy {policy.name!r} "
                f"({', '.join(str(x) for x in policy.granularities)})",
            )
        grans = [int(g)]
    else:
        grans = sorted(policy.granularities, reverse=True)
    if store.measures.exists(metric.id):
        store.measures.flush(metric.id)  # one flush for every granularity read below
    out = []
    for gran in grans:
        points = store.measures.fetch(
            metric, policy, aggregation, gran, start_ts, stop_ts, flush=False
        )
        out.extend([iso(ts), float(gran), value] for ts, value in points)
    return out


@bp.get("/metric")
def list_metrics():
    store = get_store()
    limit = parse_int("limit", arg("limit"), MAX_LIMIT, 1, MAX_LIMIT)
    marker = arg("marker")
    if marker is not None:
        marker = parse_uuid("marker", marker)
    metrics = store.index.metrics(name=arg("name"), limit=limit, marker=marker)
    response = jsonify(
        [serialize.metric(m, store.index.policy(m.archive_policy_name)) for m in metrics]
    )
    if len(metrics) == limit:
        link_next(response, metrics[-1].id)
    return response


@bp.get("/metric/<metric_id>")
def show_metric(metric_id: str):
    store = get_store()
    m = load_metric(metric_id)
    resource = None
    if m.resource_id:
        row = store.index.resource(m.resource_id)
        metrics = store.index.resource_metrics([m.resource_id])[m.resource_id]
        resource = serialize.resource(row, metrics)
    return jsonify(serialize.metric(m, store.index.policy(m.archive_policy_name), resource))


@bp.get("/metric/<metric_id>/measures")
def get_measures(metric_id: str):
    return jsonify(read_measures(load_metric(metric_id)))
