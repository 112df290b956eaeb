"""``/v1/metric``: metrics and their measures (read and pushed)."""

from __future__ import annotations

import time

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.datastructures import MultiDict

from appliance import aggregation as operations
from appliance.api import get_store, graphs, ingest, jsonio, memo_of, serialize, series, store_of
from appliance.api.auth import creator
from appliance.api.errors import ApiError, bad_param, not_found
from appliance.api.params import (
    arg,
    bool_arg,
    parse_aggregation,
    parse_duration,
    parse_int,
    parse_timestamp,
    parse_uuid,
)
from appliance.api.v1.pagination import link_next
from appliance.index import Conflict, NotFound
from appliance.model import Metric
from appliance.store import Store

bp = Blueprint("metrics", __name__)

MAX_LIMIT = 1000


def load_metric(metric_id: str) -> Metric:
    """The metric of a path's id, or a 404."""
    found = find_metric(current_app, metric_id)
    if found is None:
        raise not_found(f"Metric {metric_id}")
    return found


def find_metric(app: Flask, metric_id: str) -> Metric | None:
    """The metric of a path's id (400 if not a UUID), remembered until the index changes
    (see IndexMemo)."""
    return memo_of(app).get(("metric", metric_id), lambda: _find_metric(app, metric_id))


def _find_metric(app: Flask, metric_id: str) -> Metric | None:
    try:
        return store_of(app).index.metric(parse_uuid("metric_id", metric_id))
    except NotFound:
        return None


def time_range(args: MultiDict[str, str] | None = None) -> tuple[float | None, float | None]:
    """``start``/``stop`` query parameters (ISO 8601, epoch, or ``-1 hour``), validated."""
    start, stop = arg("start", args), arg("stop", args)
    start_ts = parse_timestamp("start", start) if start else None
    stop_ts = parse_timestamp("stop", stop) if stop else None
    if start_ts is not None and stop_ts is not None and stop_ts < start_ts:
        raise bad_param("stop", "is before start")
    return start_ts, stop_ts


def read_measures(metric: Metric) -> list[list]:
    """Gnocchi's ``[[timestamp, granularity, value], ...]`` for this request's parameters."""
    return measures_of(get_store(), metric, request.args)


def measures_of(store: Store, metric: Metric, args: MultiDict[str, str]) -> list[list]:
    """Gnocchi's ``[[timestamp, granularity, value], ...]`` for query parameters ``args``.

    Without ``granularity``, every granularity of the policy, coarsest first (Gnocchi's
    order). Cumulative meters read as per-second rates (they are stored as RRD DERIVE).
    """
    policy = store.index.policy(metric.archive_policy_name)
    aggregation = parse_aggregation(arg("aggregation", args))
    if aggregation not in policy.aggregation_methods:
        raise bad_param(
            "aggregation",
            f"{aggregation!r} is not kept by archive policy {policy.name!r} "
            f"({', '.join(policy.aggregation_methods)})",
        )
    start_ts, stop_ts = time_range(args)
    bool_arg("refresh", args=args)  # validated; every read is fresh (flush-on-read)
    granularity = arg("granularity", args)
    resample = arg("resample", args)
    if resample is not None and granularity is None:
        raise bad_param("resample", "needs a granularity")
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
    if not store.measures.exists(metric.id):
        return []
    store.measures.flush(metric.id)  # one flush for every granularity read below
    out: list = []
    for gran in grans:
        times, values = series.read(store, metric, aggregation, gran, start_ts, stop_ts)
        if resample is not None:
            step = parse_duration("resample", resample)
            return _resampled(aggregation, gran, step, times, values)
        out += jsonio.points(times, values, float(gran))
    return out


def _resampled(method: str, gran: int, step: float, times, values) -> list[list]:
    """``resample=``: one series regrouped into ``step`` buckets by its own method, as
    Gnocchi's measures read does it (through the aggregates core, not a second copy)."""
    if method not in operations.REDUCERS:
        raise bad_param("resample", f"cannot resample the {method!r} aggregation")
    key = ("series", method)
    tree = ["resample", method, step, ["metric", key]]
    source = operations.Series(key, float(gran), times, values)
    (block,) = operations.evaluate(tree, [source], needed_overlap=0.0)
    return jsonio.points(block.times, block.values[:, 0], float(step))


def push_measures(metric: Metric) -> Response:
    """POST measures to one metric: 202 with what was accepted and rejected."""
    points = ingest.parse_measures("measures", jsonio.body(), ingest.TimestampParser())
    return ingest.write([(metric, points)])


def create_metric(body: dict, resource_id: str | None = None) -> Metric:
    """Create a metric from Gnocchi's body (``name``, ``unit``, ``archive_policy_name``)."""
    if not isinstance(body, dict):
        raise bad_param("body", "must be a JSON object")
    fields = {"name", "unit", "archive_policy_name", "resource_id"}
    unknown = set(body) - fields
    if unknown:
        raise bad_param(sorted(unknown)[0], "is not a metric attribute")
    for key in ("name", "unit", "archive_policy_name"):
        value = body.get(key)
        if value is not None and (not isinstance(value, str) or not value or len(value) > 255):
            raise bad_param(key, "must be a non-empty string of at most 255 characters")
    if resource_id is None and body.get("resource_id") is not None:
        resource_id = parse_uuid("resource_id", str(body["resource_id"]))
    if resource_id is not None and body.get("name") is None:
        raise bad_param("name", "is required for a metric attached to a resource")
    store = get_store()
    if resource_id is not None:
        try:
            store.index.resource(resource_id)
        except NotFound:
            raise bad_param("resource_id", f"resource {resource_id} does not exist") from None
    try:
        return store.index.create_metric(
            body.get("name"), body.get("unit"), resource_id, body.get("archive_policy_name"),
            creator=creator(),
        )
    except NotFound as exc:
        raise bad_param("archive_policy_name", str(exc)) from None
    except Conflict as exc:
        raise ApiError(409, str(exc)) from None


def metric_body(m: Metric, with_resource: bool = False) -> dict:
    store = get_store()
    resource = None
    if with_resource and m.resource_id:
        rid = m.resource_id
        resource = serialize.resource(
            store.index.resource(rid), store.index.resource_metrics([rid])[rid]
        )
    return serialize.metric(m, store.index.policy(m.archive_policy_name), resource)


def delete_metric(m: Metric) -> None:
    store = get_store()
    store.index.delete_metric(m.id)
    store.measures.delete(m.id)


@bp.get("/metric")
def list_metrics():
    store = get_store()
    limit = parse_int("limit", arg("limit"), MAX_LIMIT, 1, MAX_LIMIT)
    marker = arg("marker")
    if marker is not None:
        marker = parse_uuid("marker", marker)
    resource_id = arg("resource_id")
    if resource_id is not None:
        resource_id = parse_uuid("resource_id", resource_id)
    metrics = store.index.metrics(
        resource_id=resource_id, name=arg("name"), limit=limit, marker=marker
    )
    response = jsonio.response([metric_body(m) for m in metrics])
    if len(metrics) == limit:
        link_next(response, metrics[-1].id)
    return response


@bp.post("/metric")
def post_metric():
    m = create_metric(jsonio.body())
    return jsonio.response(metric_body(m), 201, {"Location": f"/v1/metric/{m.id}"})


@bp.get("/metric/<metric_id>")
def show_metric(metric_id: str):
    return jsonio.response(metric_body(load_metric(metric_id), with_resource=True))


@bp.delete("/metric/<metric_id>")
def remove_metric(metric_id: str):
    delete_metric(load_metric(metric_id))
    return Response(status=204)


@bp.get("/metric/<metric_id>/measures")
def get_measures(metric_id: str):
    return jsonio.response(read_measures(load_metric(metric_id)))


@bp.post("/metric/<metric_id>/measures")
def post_measures(metric_id: str):
    return push_measures(load_metric(metric_id))


@bp.get("/metric/<metric_id>/graph.<fmt>")
def graph(metric_id: str, fmt: str):
    """The metric drawn by rrdtool: ``start``/``stop`` (default: the last day), ``width``,
    ``height`` and ``aggregation``, all validated and bounded."""
    if fmt not in graphs.FORMATS:
        raise not_found(f"Graph format {fmt}")
    m = load_metric(metric_id)
    policy = get_store().index.policy(m.archive_policy_name)
    aggregation = parse_aggregation(arg("aggregation"))
    if aggregation not in policy.aggregation_methods:
        raise bad_param("aggregation", f"{aggregation!r} is not kept by policy {policy.name!r}")
    start, stop = time_range()
    stop = time.time() if stop is None else stop
    start = stop - 86400 if start is None else start
    if stop - start < 1:
        raise bad_param("stop", "must be at least one second after start")
    width = parse_int("width", arg("width"), 800, *graphs.WIDTH)
    height = parse_int("height", arg("height"), 250, *graphs.HEIGHT)
    image = graphs.render(get_store(), m, fmt, start, stop, width, height, aggregation)
    return Response(image, mimetype=graphs.FORMATS[fmt][1])
