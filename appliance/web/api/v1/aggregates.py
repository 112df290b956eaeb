"""``/v1/aggregates``: Gnocchi's operations over explicit metrics or a resource search.

The request is validated here, the series are read by
:meth:`appliance.store.Store.read_series`, and the arithmetic is :mod:`appliance.aggregation`
(pure, shared with the alarm evaluator).
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
from flask import Blueprint, request
from pydantic import Field

from appliance import aggregation
from appliance.index.query import QueryError, parse_filter
from appliance.model import Metric
from appliance.validation import Body
from appliance.web.api import jsonio, serialize
from appliance.web.api.errors import ApiError, bad_param
from appliance.web.api.openapi import operation, query
from appliance.web.api.params import arg, body_as, bool_arg, parse_duration, parse_uuid
from appliance.web.api.v1.metrics import TIME_RANGE, metric_body, time_range
from appliance.web.api.v1.resources import SearchQuery, compiled, type_attributes
from appliance.web.context import get_store

bp = Blueprint("aggregates", __name__)

#: A search may aggregate this many resources at most (bounds one request's work).
MAX_RESOURCES = 10_000

Wanted = list[tuple[Metric, str, tuple[str, str]]]


class Aggregates(Body):
    """Gnocchi's aggregates body: operations over metrics by id, or over the metrics of the
    resources a search finds (``search`` or ``resource_type`` given)."""

    operations: str | list[Any] = Field(description="e.g. (aggregate mean (metric ID mean))")
    search: str | SearchQuery | None = None
    resource_type: str = "generic"


def _fill() -> float | str | None:
    value = arg("fill")
    if value is None or value in ("null", "dropna"):
        return value
    try:
        number = float(value)
    except ValueError:
        raise bad_param("fill", f"{value!r} is not a number, 'null' or 'dropna'") from None
    if not math.isfinite(number):
        raise bad_param("fill", "must be finite")
    return number


def _needed_overlap() -> float:
    value = arg("needed_overlap")
    if value is None:
        return 100.0
    try:
        number = float(value)
    except ValueError:
        raise bad_param("needed_overlap", f"{value!r} is not a number") from None
    if not 0.0 <= number <= 100.0:
        raise bad_param("needed_overlap", "must be between 0 and 100")
    return number


def _granularities(wanted: Wanted) -> list[int]:
    """The requested granularity, or those every metric's policy has (Gnocchi's rule)."""
    store = get_store()
    policies = store.index.policies_for({m.archive_policy_name for m, _, _ in wanted})
    for m, agg, _ in wanted:
        if agg not in policies[m.archive_policy_name].aggregation_methods:
            raise ApiError(404, f"Metric {m.id} has no aggregation {agg!r}")
    text = arg("granularity")
    if text is not None:
        g = parse_duration("granularity", text)
        lacking = [m.id for m, _, _ in wanted
                   if g not in policies[m.archive_policy_name].granularities]
        if lacking:
            raise bad_param(
                "granularity", f"{text} is not kept by metric(s) {', '.join(lacking[:10])}"
            )
        return [int(g)]
    counts = Counter(g for p in policies.values() for g in p.granularities)
    common = [g for g, n in counts.items() if n == len(policies)]
    if not common:
        raise ApiError(400, "The metrics have no granularity in common")
    return sorted(common, reverse=True)


def _compute(tree: list, wanted: Wanted) -> list[aggregation.Block]:
    store = get_store()
    start, stop = time_range()
    overlap, fill = _needed_overlap(), _fill()
    grans = _granularities(wanted)
    store.flush_many(m for m, _, _ in wanted)
    inputs = [s for g in grans for s in store.read_series(wanted, g, start, stop)]
    try:
        return aggregation.evaluate(tree, inputs, start, stop, overlap, fill)
    except aggregation.OperationError as exc:
        raise ApiError(400, str(exc)) from None


def _points(block: aggregation.Block, column: int, dropna: bool) -> list[tuple]:
    values = block.values[:, column]
    if dropna:
        values = np.where(np.isfinite(values), values, np.nan)
    return jsonio.points(block.times, values, float(block.granularity), dropna)


def _shape(blocks: list[aggregation.Block], wanted: Wanted, by_resource: bool) -> dict:
    """Gnocchi's output: ``aggregated`` or per metric (or per resource/metric name)."""
    dropna = arg("fill") == "dropna"
    if any(b.aggregated for b in blocks):
        return {"aggregated": [p for b in blocks for p in _points(b, 0, dropna)]}
    out: dict[str, Any] = {}
    for block in blocks:
        for col, source in enumerate(block.columns):
            metric, agg, _ = wanted[source % len(wanted)]
            node = out.setdefault(metric.resource_id, {}) if by_resource else out
            name = metric.name if by_resource else metric.id
            node.setdefault(name, {}).setdefault(agg, []).extend(_points(block, col, dropna))
    return out


def by_metrics(tree: list, details: bool) -> dict:
    refs = aggregation.references(tree)
    ids = [parse_uuid("operations", ref) for ref, _ in refs]
    metrics = get_store().index.metrics_by_id(ids)
    missing = sorted(set(ids) - set(metrics))
    if missing:
        raise ApiError(404, f"Unknown metrics: {', '.join(missing[:100])}")
    wanted = [(metrics[mid], agg, (ref, agg)) for mid, (ref, agg) in zip(ids, refs, strict=True)]
    out: dict[str, Any] = {"measures": _shape(_compute(tree, wanted), wanted, False)}
    if details:
        out["references"] = [metric_body(m) for m in {m.id: m for m, _, _ in wanted}.values()]
    return out


def by_resources(tree: list, rows: list, details: bool) -> dict:
    store = get_store()
    by_rid = store.index.resource_metrics([r["id"] for r in rows])
    ids = [mid for names in by_rid.values() for mid in names.values()]
    metrics = store.index.metrics_by_id(ids)
    wanted: Wanted = []
    for row in rows:
        for wildcard, agg in aggregation.references(tree):
            for name, mid in sorted(by_rid[row["id"]].items()):
                if fnmatch.fnmatchcase(name, wildcard):
                    wanted.append((metrics[mid], agg, (wildcard, agg)))
    if not wanted:
        raise ApiError(400, "No metric of the matching resources is named in the operations")
    out: dict[str, Any] = {"measures": _shape(_compute(tree, wanted), wanted, True)}
    if details:
        used = {m.resource_id for m, _, _ in wanted}
        out["references"] = [serialize.resource(r, by_rid[r["id"]]) for r in rows
                             if r["id"] in used]
    return out


def _search(body: Aggregates) -> tuple[str, list[Any]]:
    query = body.search or {}
    if isinstance(query, str):
        try:
            query = parse_filter(query)
        except QueryError as exc:
            raise bad_param("search", str(exc)) from None
    return compiled(query)


@bp.post("/aggregates")
@operation({"oneOf": [{"type": "object"}, {"type": "array"}]}, body=Aggregates, params=(
    *TIME_RANGE,
    query("granularity", {"type": "string"}),
    query("needed_overlap", {"type": "number", "minimum": 0, "maximum": 100}),
    query("fill", {"type": "string"}, "A number, null or dropna"),
    query("groupby", {"type": "string"}),
    query("details", {"type": "boolean"}),
    query("use_history", {"type": "boolean"})))
def aggregates():
    """Operations across metrics, or across the metrics of a search's resources."""
    details = bool_arg("details")
    bool_arg("use_history")
    body = body_as(Aggregates)
    try:
        tree = aggregation.parse(body.operations)
    except aggregation.OperationError as exc:
        raise bad_param("operations", str(exc)) from None
    if not {"search", "resource_type"} & body.model_fields_set:
        return jsonio.response(by_metrics(tree, details))
    resource_type = body.resource_type
    where, params = _search(body)
    return jsonio.response(
        per_group(resource_type, where, params, lambda rows: by_resources(tree, rows, details))
    )


def per_group(resource_type: str, where: str, params: list[Any],
              answer: Callable[[list], Any]) -> Any:
    """``answer(rows)`` for the resources a search matches, or, with ``groupby``, Gnocchi's
    ``[{"group": {...}, "measures": answer(rows of the group)}, ...]``."""
    type_attributes(resource_type)
    groupby = sorted({g for v in request.args.getlist("groupby") for g in v.split(",") if g})
    store = get_store()
    try:
        rows = store.index.resources(resource_type, where, params,
                                     sort=[(g, True) for g in groupby] + [("id", True)],
                                     limit=MAX_RESOURCES + 1)
    except ValueError as exc:
        raise bad_param("groupby", str(exc)) from None
    if len(rows) > MAX_RESOURCES:
        raise bad_param("search", f"matches more than {MAX_RESOURCES} resources")
    if not groupby:
        return answer(rows)
    return [
        {"group": dict(key), "measures": answer(list(members))}
        for key, members in itertools.groupby(rows, lambda r: _group_key(r, groupby))
    ]


def _group_key(row, groupby: list[str]) -> tuple:
    attrs = json.loads(row["attributes"])
    columns = set(row.keys())
    return tuple((g, row[g] if g in columns else attrs.get(g)) for g in groupby)
