"""``/v1/resource/{type}``: the resource index as Gnocchi serves it."""

from __future__ import annotations

from flask import Blueprint, jsonify

from appliance.api import get_store, serialize
from appliance.api.errors import bad_param, not_found
from appliance.api.params import arg, parse_int, parse_uuid
from appliance.api.v1.pagination import link_next
from appliance.index import NotFound

bp = Blueprint("resources", __name__)

MAX_LIMIT = 1000


def parse_sort(value: str | None) -> list[tuple[str, bool]]:
    """Gnocchi's ``sort=key:asc,key2:desc`` (attributes allowed besides the fixed columns)."""
    if not value:
        return [("id", True)]
    out = []
    for item in value.split(","):
        key, _, direction = item.partition(":")
        direction = direction or "asc"
        if direction not in ("asc", "desc") or not key.replace("_", "").isalnum():
            raise bad_param("sort", f"{item!r} is not KEY[:asc|desc]")
        out.append((key, direction == "asc"))
    return out


def check_type(type_: str) -> None:
    store = get_store()
    if not store.index.query("SELECT 1 FROM resource_types WHERE name = ?", (type_,)):
        raise not_found(f"Resource type {type_}")


@bp.get("/resource/<type_>")
def list_resources(type_: str):
    check_type(type_)
    store = get_store()
    limit = parse_int("limit", arg("limit"), MAX_LIMIT, 1, MAX_LIMIT)
    sort = parse_sort(arg("sort"))
    marker = arg("marker")
    if marker is not None:
        marker = parse_uuid("marker", marker)
    try:
        rows = store.index.resources(type_, sort=sort, limit=limit, marker=marker)
    except NotFound:
        raise bad_param("marker", f"{marker} is not a resource of this listing") from None
    metrics = store.index.resource_metrics([r["id"] for r in rows])
    body = [serialize.resource(r, metrics[r["id"]]) for r in rows]
    response = jsonify(body)
    if len(rows) == limit:
        link_next(response, rows[-1]["id"])
    return response


@bp.get("/resource/<type_>/<resource_id>")
def show_resource(type_: str, resource_id: str):
    check_type(type_)
    store = get_store()
    rid = parse_uuid("resource_id", resource_id)
    try:
        row = store.index.resource(rid, type_)
    except NotFound:
        raise not_found(f"Resource {resource_id}") from None
    return jsonify(serialize.resource(row, store.index.resource_metrics([rid])[rid]))


@bp.get("/resource/<type_>/<resource_id>/history")
def resource_history(type_: str, resource_id: str):
    check_type(type_)
    store = get_store()
    rid = parse_uuid("resource_id", resource_id)
    try:
        store.index.resource(rid, type_)
        revisions = store.index.history(rid)
    except NotFound:
        raise not_found(f"Resource {resource_id}") from None
    metrics = store.index.resource_metrics([rid])[rid]
    return jsonify([serialize.revision(rev, metrics) for rev in revisions])
