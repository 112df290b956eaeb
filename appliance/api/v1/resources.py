"""``/v1/resource``, ``/v1/resource_type`` and ``/v1/search/resource``: the resource index."""

from __future__ import annotations

import json
import uuid
from typing import Any

from flask import Blueprint, Response, request

from appliance.api import get_store, jsonio, serialize
from appliance.api.auth import creator
from appliance.api.errors import ApiError, bad_param, not_found
from appliance.api.params import arg, bool_arg, parse_int, parse_timestamp, parse_uuid
from appliance.api.v1 import metrics as metric_views
from appliance.api.v1.pagination import link_next
from appliance.index import Conflict, NotFound
from appliance.index.query import QueryError, compile_query, parse_filter
from appliance.model import Metric, Resource, resource_id_for

bp = Blueprint("resources", __name__)

MAX_LIMIT = 1000
#: Fields every resource has; anything else in a body is a type attribute.
FIXED_FIELDS = {"id", "user_id", "project_id", "started_at", "ended_at", "metrics"}
#: Fields a PATCH may not change.
IMMUTABLE_FIELDS = {"id", "type", "started_at", "user_id", "project_id", "original_resource_id",
                    "creator", "revision_start", "revision_end"}


def resolve_id(name: str, value: str) -> str:
    """A UUID as is; any other id is mapped to a UUID as Gnocchi does for original ids."""
    if not isinstance(value, str) or not value or len(value) > 255:
        raise bad_param(name, "must be a non-empty string of at most 255 characters")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return resource_id_for(value)


def parse_sort() -> list[tuple[str, bool]]:
    """Gnocchi's ``sort=key:asc,key2:desc`` (repeatable; attributes besides fixed columns)."""
    items = [i for v in request.args.getlist("sort") for i in v.split(",") if i]
    if not items:
        return [("id", True)]
    out = []
    for item in items:
        key, _, direction = item.partition(":")
        direction = (direction or "asc").split("-")[0]  # "desc-nullslast" -> "desc"
        if direction not in ("asc", "desc") or not key or not key.replace("_", "").isalnum():
            raise bad_param("sort", f"{item!r} is not KEY[:asc|desc]")
        out.append((key, direction == "asc"))
    return out


def type_attributes(type_: str) -> dict[str, Any]:
    for t in get_store().index.resource_types():
        if t["name"] == type_:
            return t["attributes"]
    raise not_found(f"Resource type {type_}")


def load(type_: str, resource_id: str):
    type_attributes(type_)
    rid = resolve_id("resource_id", resource_id)
    try:
        return get_store().index.resource(rid, type_)
    except NotFound:
        raise not_found(f"Resource {resource_id}") from None


def resource_body(row) -> dict:
    rid = row["id"]
    return serialize.resource(row, get_store().index.resource_metrics([rid])[rid])


def listing(type_: str, where: str = "", params: list | None = None) -> Response:
    """One page of resources (``limit``/``marker``/``sort``), with a ``rel="next"`` link.

    A generic page mixes types: it shows the generic keys unless ``details=true``.
    """
    type_attributes(type_)
    store = get_store()
    limit = parse_int("limit", arg("limit"), MAX_LIMIT, 1, MAX_LIMIT)
    sort = parse_sort()
    details = bool_arg("details")
    bool_arg("history")
    marker = arg("marker")
    if marker is not None:
        marker = parse_uuid("marker", marker)
    try:
        rows = store.index.resources(
            type_, where=where, params=params or [], sort=sort, limit=limit, marker=marker
        )
    except NotFound:
        raise bad_param("marker", f"{marker} is not a resource of this listing") from None
    metrics = store.index.resource_metrics([r["id"] for r in rows])
    bodies = [serialize.resource(r, metrics[r["id"]]) for r in rows]
    if type_ == "generic":
        bodies = serialize.generic_rows(bodies, details)
    response = jsonio.response(bodies)
    if len(rows) == limit:
        link_next(response, rows[-1]["id"])
    return response


def _attributes(type_: str, body: dict) -> dict[str, Any]:
    declared = type_attributes(type_)
    attrs = {k: v for k, v in body.items() if k not in FIXED_FIELDS}
    for key, value in attrs.items():
        if key not in declared:
            raise bad_param(key, f"is not an attribute of resource type {type_!r}")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise bad_param(key, "must be a string, number, boolean or null")
    return attrs


def _time_field(body: dict, key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_param(key, "must be an ISO 8601 timestamp")
    return parse_timestamp(key, value)


def _add_metrics(resource_id: str, wanted: Any, replace: bool = False) -> list[Metric]:
    """Gnocchi's ``metrics: {name: {archive_policy_name, unit} | metric_id}`` on create and
    patch: a spec creates a metric, an id attaches an existing one. With ``replace`` (a PATCH
    naming ``metrics``) the set replaces the resource's metrics, the others being detached,
    which is how ``gnocchi resource update --delete-metric`` works."""
    if wanted is None:
        return []
    if not isinstance(wanted, dict):
        raise bad_param("metrics", "must be an object {name: {archive_policy_name, unit}}")
    attach, specs = {}, {}
    for name, spec in wanted.items():
        if isinstance(spec, str):
            attach[name] = parse_uuid(f"metrics.{name}", spec)
        elif isinstance(spec, dict):
            specs[name] = spec
        else:
            raise bad_param(f"metrics.{name}",
                            "must be a metric id or an object {archive_policy_name, unit}")
    if attach or replace:
        try:
            get_store().index.set_resource_metrics(resource_id, attach, replace)
        except NotFound as exc:
            raise bad_param("metrics", f"{exc} does not exist") from None
        except Conflict as exc:
            raise ApiError(409, str(exc)) from None
    return [metric_views.create_metric({**spec, "name": name}, resource_id)
            for name, spec in specs.items()]


@bp.get("/resource_type")
def list_resource_types():
    return jsonio.response(get_store().index.resource_types())


@bp.get("/resource_type/<name>")
def show_resource_type(name: str):
    for t in get_store().index.resource_types():
        if t["name"] == name:
            return jsonio.response(t)
    raise not_found(f"Resource type {name}")


@bp.get("/resource/<type_>")
def list_resources(type_: str):
    return listing(type_)


@bp.post("/resource/<type_>")
def create_resource(type_: str):
    body = jsonio.body()
    if not isinstance(body, dict):
        raise bad_param("body", "must be a JSON object")
    if "id" not in body:
        raise bad_param("id", "is required")
    rid = resolve_id("id", body["id"])
    attrs = _attributes(type_, body)
    for key in ("user_id", "project_id"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise bad_param(key, "must be a string")
    started_at = _time_field(body, "started_at")
    res = Resource(rid, type_, str(body["id"]), attrs, _time_field(body, "ended_at"))
    store = get_store()
    try:
        store.index.create_resource(res, started_at, creator(), body.get("user_id"),
                                    body.get("project_id"))
    except Conflict:
        raise ApiError(409, f"Resource {rid} already exists") from None
    try:
        _add_metrics(rid, body.get("metrics"))
    except ApiError:
        store.index.delete_resource(rid)
        raise
    row = store.index.resource(rid)
    return jsonio.response(resource_body(row), 201, {"Location": f"/v1/resource/{type_}/{rid}"})


@bp.get("/resource/<type_>/<resource_id>")
def show_resource(type_: str, resource_id: str):
    return jsonio.response(resource_body(load(type_, resource_id)))


@bp.patch("/resource/<type_>/<resource_id>")
def patch_resource(type_: str, resource_id: str):
    row = load(type_, resource_id)
    body = jsonio.body()
    if not isinstance(body, dict):
        raise bad_param("body", "must be a JSON object")
    for key in body:
        if key in IMMUTABLE_FIELDS:
            raise bad_param(key, "cannot be changed")
    attrs = {**json.loads(row["attributes"]), **_attributes(type_, body)}
    ended_at = _time_field(body, "ended_at") if "ended_at" in body else row["ended_at"]
    store = get_store()
    _add_metrics(row["id"], body.get("metrics"), replace="metrics" in body)
    store.index.update_resource(row["id"], attrs, ended_at)
    return jsonio.response(resource_body(store.index.resource(row["id"])))


@bp.delete("/resource/<type_>/<resource_id>")
def delete_resource(type_: str, resource_id: str):
    _delete(load(type_, resource_id)["id"])
    return Response(status=204)


@bp.delete("/resource/<type_>")
def batch_delete_resources(type_: str):
    """Gnocchi's batch delete: every resource a query matches (a query is required, so
    nothing is deleted by omission); answers ``{"deleted": N}``."""
    query = search_query()
    if not query:
        raise bad_param("query", "is required (a filter or a JSON query)")
    where, params = compiled(query)
    type_attributes(type_)
    rows = get_store().index.resources(type_, where=where, params=params, sort=[("id", True)],
                                       limit=MAX_LIMIT * 10 + 1)
    if len(rows) > MAX_LIMIT * 10:
        raise bad_param("query", f"matches more than {MAX_LIMIT * 10} resources")
    for row in rows:
        _delete(row["id"])
    return jsonio.response({"deleted": len(rows)})


def _delete(resource_id: str) -> None:
    store = get_store()
    for metric_id in store.index.delete_resource(resource_id):
        store.measures.delete(metric_id)


@bp.get("/resource/<type_>/<resource_id>/history")
def resource_history(type_: str, resource_id: str):
    row = load(type_, resource_id)
    store = get_store()
    limit = parse_int("limit", arg("limit"), MAX_LIMIT, 1, MAX_LIMIT)
    marker = parse_int("marker", arg("marker"), -1, 0, 2**31)
    bool_arg("details")
    parse_sort()
    fixed = dict(row)
    revisions = [
        {**fixed, **rev}
        for rev in store.index.history(row["id"])[marker + 1 : marker + 1 + limit]
    ]
    metrics = store.index.resource_metrics([row["id"]])[row["id"]]
    response = jsonio.response([serialize.revision(rev, metrics) for rev in revisions])
    if len(revisions) == limit:
        link_next(response, str(marker + limit))
    return response


# --- a resource's metrics by name -----------------------------------------------------------


def named_metric(type_: str, resource_id: str, name: str):
    row = load(type_, resource_id)
    found = get_store().index.metrics(resource_id=row["id"], name=name)
    if not found:
        raise not_found(f"Metric {name} of resource {resource_id}")
    return found[0]


@bp.get("/resource/<type_>/<resource_id>/metric")
def list_resource_metrics(type_: str, resource_id: str):
    row = load(type_, resource_id)
    found = get_store().index.metrics(resource_id=row["id"])
    return jsonio.response([metric_views.metric_body(m) for m in found])


@bp.post("/resource/<type_>/<resource_id>/metric")
def add_resource_metrics(type_: str, resource_id: str):
    row = load(type_, resource_id)
    created = _add_metrics(row["id"], jsonio.body())
    # All the resource's metrics, as Gnocchi answers, the new ones first (gnocchiclient
    # shows the first as the metric it created).
    new = {m.id for m in created}
    others = [m for m in get_store().index.metrics(resource_id=row["id"]) if m.id not in new]
    return jsonio.response([metric_views.metric_body(m) for m in [*created, *others]])


@bp.get("/resource/<type_>/<resource_id>/metric/<name>")
def show_resource_metric(type_: str, resource_id: str, name: str):
    m = named_metric(type_, resource_id, name)
    return jsonio.response(metric_views.metric_body(m, with_resource=True))


@bp.delete("/resource/<type_>/<resource_id>/metric/<name>")
def delete_resource_metric(type_: str, resource_id: str, name: str):
    metric_views.delete_metric(named_metric(type_, resource_id, name))
    return Response(status=204)


@bp.get("/resource/<type_>/<resource_id>/metric/<name>/measures")
def get_resource_measures(type_: str, resource_id: str, name: str):
    return jsonio.response(metric_views.read_measures(named_metric(type_, resource_id, name)))


@bp.post("/resource/<type_>/<resource_id>/metric/<name>/measures")
def post_resource_measures(type_: str, resource_id: str, name: str):
    return metric_views.push_measures(named_metric(type_, resource_id, name))


# --- search ---------------------------------------------------------------------------------


def search_query() -> dict:
    """The query of a search: ``?filter=`` (string form) or the JSON body, or none."""
    text = arg("filter")
    try:
        if text is not None:
            return parse_filter(text)
        if not request.get_data():
            return {}
        query = jsonio.body()
        if not isinstance(query, dict):
            raise bad_param("query", "must be a JSON object")
        return query
    except QueryError as exc:
        raise bad_param("filter" if text is not None else "query", str(exc)) from None


def compiled(query: dict) -> tuple[str, list]:
    try:
        return compile_query(query)
    except QueryError as exc:
        raise bad_param("query", str(exc)) from None


@bp.post("/search/resource/<type_>")
def search_resources(type_: str):
    where, params = compiled(search_query())
    return listing(type_, where, params)
