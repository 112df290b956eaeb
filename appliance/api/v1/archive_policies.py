"""``/v1/archive_policy`` and ``/v1/archive_policy_rule``.

A policy is laid out as RRAs when a metric's RRD file is created. A PATCH may change a
policy in use (granularities, timespans, aggregation methods): every file on it is then
rebuilt in the new layout with its data (:mod:`appliance.retention`), and the policy's GET
and ``/v1/status`` show how many metrics still wait. Only the finest granularity (the files'
step) stays as it is while metrics use the policy. A policy in use cannot be deleted (as in
Gnocchi).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from appliance import retention
from appliance.api import get_settings, get_store, jsonio
from appliance.api.errors import ApiError, bad_param, not_found
from appliance.api.params import parse_duration
from appliance.index import Conflict, NotFound, rebuilds
from appliance.storage.policy import CF_FOR_AGGREGATION, ArchivePolicy, make_policy

bp = Blueprint("archive_policies", __name__)

#: Bounds a policy's RRD file (8 bytes per point per aggregation method).
MAX_POINTS = 1_000_000
MAX_GRANULARITY = 366 * 86400
NAME_MAX = 255


def _name(value: Any, field: str = "name") -> str:
    if not isinstance(value, str) or not value or len(value) > NAME_MAX or "/" in value:
        raise bad_param(field, "must be a non-empty string without '/' (at most 255 characters)")
    return value


def _definition(items: Any) -> list[tuple[int, int]]:
    """Gnocchi's ``[{granularity, points | timespan}]`` -> ``[(seconds, points)]``."""
    if not isinstance(items, list) or not items:
        raise bad_param("definition", "must be a non-empty list")
    out = []
    for i, item in enumerate(items):
        name = f"definition[{i}]"
        if not isinstance(item, dict) or "granularity" not in item:
            raise bad_param(name, "must be an object with granularity and points or timespan")
        unknown = set(item) - {"granularity", "points", "timespan"}
        if unknown:
            raise bad_param(f"{name}.{sorted(unknown)[0]}", "is not a definition field")
        granularity = parse_duration(f"{name}.granularity", item["granularity"])
        if granularity != int(granularity) or granularity > MAX_GRANULARITY:
            raise bad_param(f"{name}.granularity", "must be whole seconds, at most a year")
        points = item.get("points")
        if points is not None:
            try:
                points = int(points)
            except (TypeError, ValueError):
                raise bad_param(f"{name}.points", f"{points!r} is not an integer") from None
        elif item.get("timespan") is not None:
            timespan = parse_duration(f"{name}.timespan", item["timespan"])
            points = int(timespan // granularity)
        else:
            raise bad_param(name, "needs points or timespan")
        if not 1 <= points <= MAX_POINTS:
            raise bad_param(f"{name}.points", f"must be between 1 and {MAX_POINTS}")
        out.append((int(granularity), points))
    return out


def _methods(value: Any) -> list[str]:
    if value is None:
        return ["mean", "min", "max"]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise bad_param("aggregation_methods", "must be a non-empty list of names")
    unknown = sorted(set(value) - set(CF_FOR_AGGREGATION))
    if unknown:
        raise bad_param(
            "aggregation_methods",
            f"{unknown[0]!r} is not supported (RRD keeps {', '.join(CF_FOR_AGGREGATION)})",
        )
    return sorted(set(value))


def _policy_from(body: Any) -> ArchivePolicy:
    if not isinstance(body, dict):
        raise bad_param("body", "must be a JSON object")
    unknown = set(body) - {"name", "definition", "aggregation_methods", "back_window"}
    if unknown:
        raise bad_param(sorted(unknown)[0], "is not an archive policy field")
    back_window = body.get("back_window", 0)
    if isinstance(back_window, bool) or not isinstance(back_window, int) or back_window < 0:
        raise bad_param("back_window", "must be a non-negative integer")
    try:
        return make_policy(
            _name(body.get("name")), _definition(body.get("definition")),
            _methods(body.get("aggregation_methods")), back_window,
        )
    except ValueError as exc:
        raise bad_param("definition", str(exc)) from None


def _load(name: str) -> ArchivePolicy:
    try:
        return get_store().index.policy(name)
    except NotFound:
        raise not_found(f"Archive policy {name}") from None


@bp.get("/archive_policy")
def list_policies():
    return jsonio.response([p.to_gnocchi() for p in get_store().index.policies()])


@bp.post("/archive_policy")
def create_policy():
    policy = _policy_from(jsonio.body())
    try:
        get_store().index.create_policy(policy)
    except Conflict as exc:
        raise ApiError(409, str(exc)) from None
    return jsonio.response(
        policy.to_gnocchi(), 201, {"Location": f"/v1/archive_policy/{policy.name}"}
    )


@bp.get("/archive_policy/<name>")
def show_policy(name: str):
    return jsonio.response(_shown(_load(name)))


@bp.patch("/archive_policy/<name>")
def patch_policy(name: str):
    current = _load(name)
    body = jsonio.body()
    if not isinstance(body, dict) or not body or set(body) - {"definition", "aggregation_methods"}:
        raise bad_param("body", "only definition and aggregation_methods can be changed")
    policy = _policy_from(
        {"name": name, "definition": body.get("definition", current.to_gnocchi()["definition"]),
         "aggregation_methods": body.get("aggregation_methods",
                                         list(current.aggregation_methods)),
         "back_window": current.back_window}
    )
    index = get_store().index
    if policy.step != current.step and rebuilds.metric_count(index, name):
        raise bad_param(
            "definition",
            f"the finest granularity ({current.step} s) is the step of the RRD files of "
            f"the metrics on {name!r} and cannot change while they exist",
        )
    if rebuilds.change_policy(index, policy):
        retention.rebuild_in_background(get_settings())
    return jsonio.response(_shown(policy))


def _shown(policy: ArchivePolicy) -> dict:
    """Gnocchi's shape, plus how many metric files still wait for a change's new layout."""
    out = policy.to_gnocchi()
    waiting = rebuilds.progress(get_store().index).get(policy.name)
    if waiting:
        out["rebuilding_metrics"] = waiting
    return out


@bp.delete("/archive_policy/<name>")
def delete_policy(name: str):
    _load(name)
    try:
        get_store().index.delete_policy(name)
    except Conflict as exc:
        raise ApiError(400, str(exc)) from None
    return Response(status=204)


def _rule(row: dict[str, str]) -> dict[str, str]:
    return {
        "name": row["name"],
        "metric_pattern": row["metric_pattern"],
        "archive_policy_name": row["archive_policy_name"],
    }


@bp.get("/archive_policy_rule")
def list_rules():
    return jsonio.response([_rule(r) for r in get_store().index.rules()])


@bp.post("/archive_policy_rule")
def create_rule():
    body = jsonio.body()
    if not isinstance(body, dict):
        raise bad_param("body", "must be a JSON object")
    unknown = set(body) - {"name", "metric_pattern", "archive_policy_name"}
    if unknown:
        raise bad_param(sorted(unknown)[0], "is not an archive policy rule field")
    name = _name(body.get("name"))
    pattern = _name(body.get("metric_pattern"), "metric_pattern").strip()
    policy = _name(body.get("archive_policy_name"), "archive_policy_name")
    index = get_store().index
    try:
        index.create_rule(name, pattern, policy)
    except NotFound:
        raise bad_param(
            "archive_policy_name", f"archive policy {policy!r} does not exist"
        ) from None
    except Conflict as exc:
        raise ApiError(409, str(exc)) from None
    return jsonio.response(
        _rule(index.rule(name)), 201, {"Location": f"/v1/archive_policy_rule/{name}"}
    )


@bp.get("/archive_policy_rule/<name>")
def show_rule(name: str):
    try:
        return jsonio.response(_rule(get_store().index.rule(name)))
    except NotFound:
        raise not_found(f"Archive policy rule {name}") from None


@bp.patch("/archive_policy_rule/<name>")
def rename_rule(name: str):
    body = jsonio.body()
    if not isinstance(body, dict) or set(body) != {"name"}:
        raise bad_param("body", "only the name of a rule can change: {\"name\": NEW}")
    new_name = _name(body["name"])
    index = get_store().index
    try:
        index.rename_rule(name, new_name)
    except NotFound:
        raise not_found(f"Archive policy rule {name}") from None
    except Conflict as exc:
        raise ApiError(409, str(exc)) from None
    return jsonio.response(_rule(index.rule(new_name)))


@bp.delete("/archive_policy_rule/<name>")
def delete_rule(name: str):
    try:
        get_store().index.delete_rule(name)
    except NotFound:
        raise not_found(f"Archive policy rule {name}") from None
    return Response(status=204)
