"""``/v1/aggregation/...``: Gnocchi's older cross-metric reads, which ``gnocchi measures
aggregation`` still calls.

Each request is restated as a ``/v1/aggregates`` operation tree (Gnocchi does the same:
``(aggregate REAGGREGATION (metric (REF AGGREGATION) ...))``, resampled first when asked) and
answered by that module, so both APIs share one path to the series and one arithmetic.
"""

from __future__ import annotations

from flask import Blueprint, request

from appliance import aggregation
from appliance.web.api import jsonio
from appliance.web.api.errors import bad_param
from appliance.web.api.openapi import UUID, operation, query
from appliance.web.api.params import arg, bool_arg, parse_aggregation, parse_duration
from appliance.web.api.v1 import aggregates
from appliance.web.api.v1.metrics import AGGREGATION, MEASURES, TIME_RANGE
from appliance.web.api.v1.resources import Query, compiled, search_query

bp = Blueprint("aggregation", __name__)

#: The query parameters both reads take (:func:`_tree` and the aggregates core read them).
READ_QUERY = (
    *TIME_RANGE, AGGREGATION,
    query("reaggregation", {"type": "string"}, "How the series are combined (default: mean)"),
    query("granularity", {"type": "string"}),
    query("resample", {"type": "string"}, "Regroup into buckets this long (needs granularity)"),
    query("needed_overlap", {"type": "number", "minimum": 0, "maximum": 100}),
    query("fill", {"type": "string"}, "A number, null or dropna"),
    query("refresh", {"type": "boolean"}),
)


def _tree(refs: list[str]) -> list:
    method = parse_aggregation(arg("aggregation") or "mean")
    reaggregation = arg("reaggregation") or method.removeprefix("rate:")
    if reaggregation not in aggregation.REDUCERS:
        raise bad_param("reaggregation", f"{reaggregation!r} is not one of "
                        f"{', '.join(sorted(aggregation.REDUCERS))}")
    node: list = ["metric", *([ref, method] for ref in refs)]
    resample = arg("resample")
    if resample is not None:
        if arg("granularity") is None:
            raise bad_param("resample", "needs a granularity")
        node = ["resample", reaggregation, parse_duration("resample", resample), node]
    bool_arg("refresh")  # every read is fresh (flush-on-read)
    try:
        return aggregation.parse(["aggregate", reaggregation, node])
    except aggregation.OperationError as exc:
        raise bad_param("aggregation", str(exc)) from None


@bp.get("/aggregation/metric")
@operation(MEASURES, params=(
    query("metric", {"type": "array", "items": UUID}, "Metric ids (repeat the parameter)"),
    *READ_QUERY))
def across_metrics():
    """Several metrics' series combined into one (``gnocchi measures aggregation``)."""
    refs = request.args.getlist("metric")
    if not refs:
        raise bad_param("metric", "is required (one or more metric ids)")
    answer = aggregates.by_metrics(_tree(refs), details=False)
    return jsonio.response(answer["measures"]["aggregated"])


@bp.post("/aggregation/resource/<type_>/metric/<name>")
@operation({"anyOf": [MEASURES, {"type": "array", "items": {"type": "object"}}]}, body=Query,
           body_required=False, params=(
               *READ_QUERY, query("groupby", {"type": "string"}),
               query("filter", {"type": "string"}, "Gnocchi's filter string")))
def across_resources(type_: str, name: str):
    """A metric of the resources a search finds, combined (per group with ``groupby``)."""
    tree = _tree([name])
    where, params = compiled(search_query())

    def answer(rows: list) -> list:
        return aggregates.by_resources(tree, rows, details=False)["measures"]["aggregated"]

    return jsonio.response(aggregates.per_group(type_, where, params, answer))
