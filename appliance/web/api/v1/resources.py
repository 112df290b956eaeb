"""``/v1/resource``, ``/v1/resource_type`` and ``/v1/search/resource``: the resource index."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Union

from flask import Blueprint, Response, request
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    WithJsonSchema,
    model_validator,
)

from appliance.index import Conflict, NotFound
from appliance.index.query import QueryError, compile_query, parse_filter
from appliance.model import Metric, Resource, resource_id_for
from appliance.validation import CUSTOM, Body, Label, fail, tag
from appliance.web.api import jsonio, serialize
from appliance.web.api.auth import creator
from appliance.web.api.errors import ApiError, bad_param, not_found
from appliance.web.api.ingest import WriteReport
from appliance.web.api.openapi import Named, operation, query
from appliance.web.api.params import arg, body_as, bool_arg, parse_int, parse_timestamp, parse_uuid
from appliance.web.api.serialize import ShownMetric, ShownResource
from appliance.web.api.v1 import metrics as metric_views
from appliance.web.api.v1.metrics import MEASURES, MEASURES_QUERY, PAGING, MeasureList, MetricCreate
from appliance.web.api.v1.pagination import link_next
from appliance.web.context import get_store

bp = Blueprint("resources", __name__)

MAX_LIMIT = 1000
#: Fields a PATCH may not change.
IMMUTABLE_FIELDS = {"id", "type", "started_at", "user_id", "project_id", "original_resource_id",
                    "creator", "revision_start", "revision_end"}


def _scalar(value: Any) -> Any:
    if value is not None and not isinstance(value, str | int | float | bool):
        raise fail("must be a string, number, boolean or null")
    return value


#: A type attribute's value (which attributes a type has is the index's to say).
Attribute = Annotated[Any, BeforeValidator(_scalar), WithJsonSchema(
    {"type": ["string", "number", "boolean", "null"]})]


def _metric_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return tag("spec")
    return tag("id") if isinstance(value, str | uuid.UUID) else None


#: A resource's metrics by name: a new one's spec, or the id of an existing one to attach.
Metrics = dict[str, Annotated[
    Union[Annotated[MetricCreate, Tag(tag("spec"))],  # noqa: UP007
          Annotated[uuid.UUID, Tag(tag("id"))]],
    Discriminator(_metric_kind, custom_error_type=CUSTOM,
                  custom_error_message="must be a metric id or an object "
                                       "{archive_policy_name, unit}"),
]]


class ResourceCreate(Body):
    """Gnocchi's resource body: fixed fields, new metrics by name, and the type's attributes
    as further fields."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Attribute]  # type: ignore[assignment]
    id: Label
    user_id: str | None = None
    project_id: str | None = None
    started_at: str | None = Field(None, description="ISO 8601")
    ended_at: str | None = Field(None, description="ISO 8601")
    metrics: Metrics | None = None


class ResourcePatch(Body):
    """Attributes to change, ``ended_at``, and the resource's metrics: given, they replace
    its set (ids attached, specs created, the others detached but kept)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Attribute]  # type: ignore[assignment]
    ended_at: str | None = Field(None, description="ISO 8601")
    metrics: Metrics | None = None

    @model_validator(mode="before")
    @classmethod
    def _mutable_only(cls, data: Any) -> Any:
        fixed = sorted(IMMUTABLE_FIELDS & set(data)) if isinstance(data, dict) else []
        if fixed:
            raise fail(f"{fixed[0]} cannot be changed")
        return data


class ShownResourceType(BaseModel):
    name: str
    attributes: dict[str, Any]
    state: str


#: Gnocchi's search: ``{op: {field: value}}``, ``{"and"|"or": [...]}``, ``{"not": q}``;
#: :func:`compile_query` checks the rest.
SearchQuery = Annotated[dict[str, Any], Field(max_length=1)]
Query = Named("Query", SearchQuery)
_QUERY = TypeAdapter(SearchQuery)
_METRICS = TypeAdapter(Metrics)
LISTING = (*PAGING, query("sort", {"type": "string"}, "KEY[:asc|desc], comma separated"),
           query("details", {"type": "boolean"}), query("history", {"type": "boolean"}))


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


def _attributes(type_: str, body: ResourceCreate | ResourcePatch) -> dict[str, Any]:
    """The body's type attributes, each declared by the resource type."""
    declared = type_attributes(type_)
    attrs = dict(body.model_extra or {})
    for key in attrs:
        if key not in declared:
            raise bad_param(key, f"is not an attribute of resource type {type_!r}")
    return attrs


def _time(key: str, value: str | None) -> float | None:
    return None if value is None else parse_timestamp(key, value)


def _add_metrics(resource_id: str, wanted: dict[str, MetricCreate | uuid.UUID] | None,
                 replace: bool = False) -> list[Metric]:
    """Gnocchi's ``metrics: {name: {archive_policy_name, unit} | metric_id}`` on create and
    patch: a spec creates a metric, an id attaches an existing one. With ``replace`` (a PATCH
    naming ``metrics``) the set replaces the resource's metrics, the others being detached,
    which is how ``gnocchi resource update --delete-metric`` works."""
    wanted = wanted or {}
    attach = {name: str(spec) for name, spec in wanted.items() if isinstance(spec, uuid.UUID)}
    if attach or replace:
        try:
            get_store().index.set_resource_metrics(resource_id, attach, replace)
        except NotFound as exc:
            raise bad_param("metrics", f"{exc} does not exist") from None
        except Conflict as exc:
            raise ApiError(409, str(exc)) from None
    return [metric_views.create_metric({**spec.model_dump(exclude_unset=True), "name": name},
                                       resource_id)
            for name, spec in wanted.items() if isinstance(spec, MetricCreate)]


@bp.get("/resource_type")
@operation({"type": "array", "items": ShownResourceType})
def list_resource_types():
    """Every resource type and its attributes."""
    return jsonio.response(get_store().index.resource_types())


@bp.get("/resource_type/<name>")
@operation(ShownResourceType)
def show_resource_type(name: str):
    """One resource type."""
    for t in get_store().index.resource_types():
        if t["name"] == name:
            return jsonio.response(t)
    raise not_found(f"Resource type {name}")


@bp.get("/resource/<type_>")
@operation({"type": "array", "items": ShownResource}, params=LISTING)
def list_resources(type_: str):
    """Resources of a type, a page at a time (``Link: rel="next"``)."""
    return listing(type_)


@bp.post("/resource/<type_>")
@operation(ShownResource, status=201, body=ResourceCreate)
def create_resource(type_: str):
    """Create a resource (and metrics of it)."""
    body = body_as(ResourceCreate)
    rid = resolve_id("id", body.id)
    attrs = _attributes(type_, body)
    started_at = _time("started_at", body.started_at)
    res = Resource(rid, type_, body.id, attrs, _time("ended_at", body.ended_at))
    store = get_store()
    try:
        store.index.create_resource(res, started_at, creator(), body.user_id, body.project_id)
    except Conflict:
        raise ApiError(409, f"Resource {rid} already exists") from None
    try:
        _add_metrics(rid, body.metrics)
    except ApiError:
        store.delete_resource(rid)
        raise
    row = store.index.resource(rid)
    return jsonio.response(resource_body(row), 201, {"Location": f"/v1/resource/{type_}/{rid}"})


@bp.get("/resource/<type_>/<resource_id>")
@operation(ShownResource)
def show_resource(type_: str, resource_id: str):
    """One resource."""
    return jsonio.response(resource_body(load(type_, resource_id)))


@bp.patch("/resource/<type_>/<resource_id>")
@operation(ShownResource, body=ResourcePatch)
def patch_resource(type_: str, resource_id: str):
    """Change a resource's attributes or end, or add metrics to it."""
    row = load(type_, resource_id)
    body = body_as(ResourcePatch)
    attrs = {**json.loads(row["attributes"]), **_attributes(type_, body)}
    ended_at = (_time("ended_at", body.ended_at) if "ended_at" in body.model_fields_set
                else row["ended_at"])
    store = get_store()
    _add_metrics(row["id"], body.metrics, replace=body.metrics is not None)
    store.index.update_resource(row["id"], attrs, ended_at)
    return jsonio.response(resource_body(store.index.resource(row["id"])))


@bp.delete("/resource/<type_>/<resource_id>")
@operation(status=204)
def delete_resource(type_: str, resource_id: str):
    """Delete a resource with its metrics."""
    row = load(type_, resource_id)
    get_store().delete_resource(row["id"])
    return Response(status=204)


class Deleted(BaseModel):
    """How many resources a batch delete removed."""

    deleted: int


@bp.delete("/resource/<type_>")
@operation(Deleted, body=Query, body_required=False,
           params=(query("filter", {"type": "string"}, "Gnocchi's filter string"),))
def batch_delete_resources(type_: str):
    """Delete every resource a query matches, with its metrics.

    Gnocchi's batch delete: a query is required (JSON body or ``filter``), so nothing is
    deleted by omission; answers ``{"deleted": N}``.
    """
    query = search_query()
    if not query:
        raise bad_param("query", "is required (a filter or a JSON query)")
    where, params = compiled(query)
    type_attributes(type_)
    rows = get_store().index.resources(type_, where=where, params=params, sort=[("id", True)],
                                       limit=MAX_LIMIT * 10 + 1)
    if len(rows) > MAX_LIMIT * 10:
        raise bad_param("query", f"matches more than {MAX_LIMIT * 10} resources")
    store = get_store()
    for row in rows:
        store.delete_resource(row["id"])
    return jsonio.response({"deleted": len(rows)})


@bp.get("/resource/<type_>/<resource_id>/history")
@operation({"type": "array", "items": ShownResource}, params=(
    query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
    query("marker", {"type": "integer", "minimum": 0}, "Last index of the previous page"),
    query("details", {"type": "boolean"}),
    query("sort", {"type": "string"})))
def resource_history(type_: str, resource_id: str):
    """A resource's attribute revisions, oldest first."""
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
@operation({"type": "array", "items": ShownMetric})
def list_resource_metrics(type_: str, resource_id: str):
    """A resource's metrics."""
    row = load(type_, resource_id)
    found = get_store().index.metrics(resource_id=row["id"])
    return jsonio.response([metric_views.metric_body(m) for m in found])


@bp.post("/resource/<type_>/<resource_id>/metric")
@operation({"type": "array", "items": ShownMetric}, body=Named("Metrics", Metrics))
def add_resource_metrics(type_: str, resource_id: str):
    """Add metrics to a resource, by name."""
    row = load(type_, resource_id)
    created = _add_metrics(row["id"], body_as(_METRICS))
    # All the resource's metrics, as Gnocchi answers, the new ones first (gnocchiclient
    # shows the first as the metric it created).
    new = {m.id for m in created}
    others = [m for m in get_store().index.metrics(resource_id=row["id"]) if m.id not in new]
    return jsonio.response([metric_views.metric_body(m) for m in [*created, *others]])


@bp.get("/resource/<type_>/<resource_id>/metric/<name>")
@operation(ShownMetric)
def show_resource_metric(type_: str, resource_id: str, name: str):
    m = named_metric(type_, resource_id, name)
    return jsonio.response(metric_views.metric_body(m, with_resource=True))


@bp.delete("/resource/<type_>/<resource_id>/metric/<name>")
@operation(status=204)
def delete_resource_metric(type_: str, resource_id: str, name: str):
    metric_views.delete_metric(named_metric(type_, resource_id, name))
    return Response(status=204)


@bp.get("/resource/<type_>/<resource_id>/metric/<name>/measures")
@operation(MEASURES, params=MEASURES_QUERY)
def get_resource_measures(type_: str, resource_id: str, name: str):
    return jsonio.response(metric_views.read_measures(named_metric(type_, resource_id, name)))


@bp.post("/resource/<type_>/<resource_id>/metric/<name>/measures")
@operation(WriteReport, status=202, body=MeasureList)
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
        return body_as(_QUERY, where="query")
    except QueryError as exc:
        raise bad_param("filter" if text is not None else "query", str(exc)) from None


def compiled(query: dict) -> tuple[str, list]:
    try:
        return compile_query(query)
    except QueryError as exc:
        raise bad_param("query", str(exc)) from None


@bp.post("/search/resource/<type_>")
@operation({"type": "array", "items": ShownResource}, body=Query, body_required=False,
           params=(*LISTING, query("filter", {"type": "string"}, "Gnocchi's filter string")))
def search_resources(type_: str):
    """Resources of a type that match a query (JSON body or ``filter``)."""
    where, params = compiled(search_query())
    return listing(type_, where, params)
