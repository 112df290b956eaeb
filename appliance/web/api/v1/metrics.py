"""``/v1/metric``: metrics and their measures (read and pushed)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from flask import Blueprint, Flask, Response, current_app, request
from pydantic import Field
from werkzeug.datastructures import MultiDict

from appliance import aggregation as operations
from appliance.index import Conflict, NotFound
from appliance.model import Metric
from appliance.store import Store
from appliance.validation import Body, Label, UUIDText
from appliance.web.api import graphs, ingest, jsonio, serialize
from appliance.web.api.auth import creator
from appliance.web.api.errors import ApiError, bad_param, not_found
from appliance.web.api.ingest import WriteReport
from appliance.web.api.openapi import UUID, Named, operation, query
from appliance.web.api.params import (
    AGGREGATIONS,
    arg,
    body_as,
    bool_arg,
    parse_aggregation,
    parse_duration,
    parse_int,
    parse_timestamp,
    parse_uuid,
)
from appliance.web.api.serialize import ShownMetric
from appliance.web.api.v1.pagination import link_next
from appliance.web.context import get_store, memo_of, store_of

bp = Blueprint("metrics", __name__)

MAX_LIMIT = 1000


class MetricCreate(Body):
    """Gnocchi's metric body; a metric attached to a resource needs a name."""

    name: Label | None = None
    unit: Label | None = None
    archive_policy_name: Label | None = None
    resource_id: UUIDText | None = None


class Measure(Body):
    """One measure as written. The write path checks measures by hand (``ingest``): it is
    the hot path, and this model is its documentation, not its validator."""

    timestamp: str | float = Field(description="ISO 8601 or epoch seconds")
    value: float


#: A measures write (one metric's list).
MeasureList = Named("MeasureList", Annotated[list[Measure], Field(max_length=1000)])
#: Gnocchi's ``[timestamp, granularity, value]`` triples.
MEASURES = Named("Measures", list[Annotated[list[Any], Field(min_length=3, max_length=3)]])
TIMESTAMP = {"type": "string", "description": "ISO 8601, epoch seconds or -N unit (relative)"}
TIME_RANGE = (query("start", TIMESTAMP), query("stop", TIMESTAMP))
AGGREGATION = query("aggregation", {"type": "string", "enum": list(AGGREGATIONS)})
#: The query parameters :func:`measures_of` reads.
MEASURES_QUERY = (
    *TIME_RANGE, AGGREGATION,
    query("granularity", {"type": "string"}, "Seconds or a duration (60, 1m); in the policy"),
    query("refresh", {"type": "boolean"}),
    query("resample", {"type": "string"}, "Regroup one granularity into buckets this long"),
)
PAGING = (query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
          query("marker", UUID, "Last id of the previous page"))


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
        times, values = store.read(metric, aggregation, gran, start_ts, stop_ts)
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


def create_metric(body: Any, resource_id: str | None = None) -> Metric:
    """Create a metric from Gnocchi's body (``name``, ``unit``, ``archive_policy_name``),
    given as JSON data: a batch write and a resource's ``metrics`` call this too."""
    spec = body_as(MetricCreate, body)
    if resource_id is None:
        resource_id = spec.resource_id
    if resource_id is not None and spec.name is None:
        raise bad_param("name", "is required for a metric attached to a resource")
    store = get_store()
    if resource_id is not None:
        try:
            store.index.resource(resource_id)
        except NotFound:
            raise bad_param("resource_id", f"resource {resource_id} does not exist") from None
    try:
        return store.index.create_metric(
            spec.name, spec.unit, resource_id, spec.archive_policy_name, creator=creator(),
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
    get_store().delete_metric(m.id)


@bp.get("/metric")
@operation({"type": "array", "items": ShownMetric},
           params=(*PAGING, query("name", {"type": "string"}), query("resource_id", UUID)))
def list_metrics():
    """Metrics, a page at a time (``Link: rel="next"``)."""
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
@operation(ShownMetric, status=201, body=MetricCreate)
def post_metric():
    """Create a metric."""
    m = create_metric(jsonio.body())
    return jsonio.response(metric_body(m), 201, {"Location": f"/v1/metric/{m.id}"})


@bp.get("/metric/<metric_id>")
@operation(ShownMetric, path={"metric_id": UUID})
def show_metric(metric_id: str):
    """One metric, with its resource."""
    return jsonio.response(metric_body(load_metric(metric_id), with_resource=True))


@bp.delete("/metric/<metric_id>")
@operation(status=204, path={"metric_id": UUID})
def remove_metric(metric_id: str):
    """Delete a metric and its measures."""
    delete_metric(load_metric(metric_id))
    return Response(status=204)


@bp.get("/metric/<metric_id>/measures")
@operation(MEASURES, params=MEASURES_QUERY, path={"metric_id": UUID})
def get_measures(metric_id: str):
    """A metric's measures, coarsest granularity first."""
    return jsonio.response(read_measures(load_metric(metric_id)))


@bp.post("/metric/<metric_id>/measures")
@operation(WriteReport, status=202, body=MeasureList, path={"metric_id": UUID})
def post_measures(metric_id: str):
    """Write measures to a metric."""
    return push_measures(load_metric(metric_id))


@bp.get("/metric/<metric_id>/graph.<fmt>")
@operation(content={mime: {"schema": {"type": "string"}} for _, mime in graphs.FORMATS.values()},
           path={"metric_id": UUID, "fmt": {"type": "string", "enum": list(graphs.FORMATS)}},
           params=(*TIME_RANGE, AGGREGATION,
                   query("width", {"type": "integer", "minimum": graphs.WIDTH[0],
                                   "maximum": graphs.WIDTH[1]}),
                   query("height", {"type": "integer", "minimum": graphs.HEIGHT[0],
                                    "maximum": graphs.HEIGHT[1]})))
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
    drawn = graphs.render(get_store(), m, fmt, start, stop, width, height, aggregation)
    response = Response(drawn.image, mimetype=graphs.FORMATS[fmt][1])
    # The newest value drawn, as the status page's charts say it (X-Chart-Last).
    response.headers["X-Graph-Last"] = "none" if drawn.last is None else repr(drawn.last)
    return response
