"""``/v1/archive_policy`` and ``/v1/archive_policy_rule``.

A policy is laid out as RRAs when a metric's RRD file is created and RRD files cannot
change their RRAs afterwards, so a policy may be changed (PATCH) or deleted only while no
metric or rule uses it (Gnocchi also refuses to delete a policy in use).
"""

from __future__ import annotations

from typing import Annotated, Any

from flask import Blueprint, Response
from pydantic import BaseModel, BeforeValidator, Field, Strict, WithJsonSchema, model_validator

from appliance.api import jsonio
from appliance.api.errors import ApiError, bad_param, not_found
from appliance.api.openapi import operation
from appliance.api.params import body_as, duration_seconds
from appliance.api.serialize import ShownArchivePolicy
from appliance.index import Conflict, NotFound
from appliance.model import AGGREGATION_METHODS, ArchivePolicy, make_policy
from appliance.validation import Body, Name, fail, one_of
from appliance.webcontext import get_store

bp = Blueprint("archive_policies", __name__)

#: Bounds a policy's RRD file (8 bytes per point per aggregation method).
MAX_POINTS = 1_000_000
MAX_GRANULARITY = 366 * 86400


def _seconds(value: Any) -> float:
    try:
        return duration_seconds(value)
    except ValueError as exc:
        raise fail(f"must be a duration (seconds, 5m, 1h, H:MM:SS): {exc}") from None


def _granularity(seconds: float) -> float:
    if seconds != int(seconds) or seconds > MAX_GRANULARITY:
        raise fail("must be whole seconds, at most a year")
    return seconds


#: Seconds, as a number or Gnocchi's ``"5 minutes"``, ``"1h"``, ``"0:01:00"``.
Duration = Annotated[float, BeforeValidator(_seconds), WithJsonSchema(
    {"anyOf": [{"type": "string"}, {"type": "number", "exclusiveMinimum": 0}]})]


class DefinitionItem(Body):
    """One resolution: a granularity kept for ``points`` points (or for ``timespan``)."""

    granularity: Annotated[Duration, BeforeValidator(lambda v: _granularity(_seconds(v)))]
    points: Annotated[int, Field(ge=1, le=MAX_POINTS)] | None = None
    timespan: Duration | None = None

    @model_validator(mode="after")
    def _sized(self) -> DefinitionItem:
        if self.points is None:
            if self.timespan is None:
                raise fail("needs points or timespan")
            if not 1 <= self.timespan // self.granularity <= MAX_POINTS:
                raise fail(f"timespan must hold between 1 and {MAX_POINTS} points")
        return self

    def pair(self) -> tuple[int, int]:
        """``(seconds, points)``, as :func:`make_policy` takes it."""
        points = self.points or int(self.timespan // self.granularity)  # type: ignore[operator]
        return int(self.granularity), points


Definition = Annotated[list[DefinitionItem], Field(min_length=1)]


class ArchivePolicyCreate(Body):
    """Gnocchi's archive policy body."""

    name: Name
    definition: Definition
    aggregation_methods: Annotated[list[one_of(*AGGREGATION_METHODS)],  # type: ignore[valid-type]
                                   Field(min_length=1)] = ["mean", "min", "max"]
    back_window: Annotated[int, Strict(), Field(ge=0)] = 0


class ArchivePolicyPatch(Body):
    """Only the definition of a policy can change (and only while no metric uses it)."""

    definition: Definition


class ArchivePolicyRuleCreate(Body):
    """A rule: metrics whose name matches ``metric_pattern`` get ``archive_policy_name``."""

    name: Name
    metric_pattern: Name
    archive_policy_name: Name


class ShownArchivePolicyRule(BaseModel):
    name: str
    metric_pattern: str
    archive_policy_name: str


def _policy(name: str, definition: list[DefinitionItem], methods: list[str],
            back_window: int) -> ArchivePolicy:
    try:
        return make_policy(name, [item.pair() for item in definition], sorted(set(methods)),
                           back_window)
    except ValueError as exc:
        raise bad_param("definition", str(exc)) from None


def _load(name: str) -> ArchivePolicy:
    try:
        return get_store().index.policy(name)
    except NotFound:
        raise not_found(f"Archive policy {name}") from None


@bp.get("/archive_policy")
@operation({"type": "array", "items": ShownArchivePolicy})
def list_policies():
    """Every archive policy, the built-in ones included."""
    return jsonio.response([p.to_gnocchi() for p in get_store().index.policies()])


@bp.post("/archive_policy")
@operation(ShownArchivePolicy, status=201, body=ArchivePolicyCreate)
def create_policy():
    """Create an archive policy."""
    body = body_as(ArchivePolicyCreate)
    policy = _policy(body.name, body.definition, body.aggregation_methods, body.back_window)
    try:
        get_store().index.create_policy(policy)
    except Conflict as exc:
        raise ApiError(409, str(exc)) from None
    return jsonio.response(
        policy.to_gnocchi(), 201, {"Location": f"/v1/archive_policy/{policy.name}"}
    )


@bp.get("/archive_policy/<name>")
@operation(ShownArchivePolicy)
def show_policy(name: str):
    """One archive policy."""
    return jsonio.response(_load(name).to_gnocchi())


@bp.patch("/archive_policy/<name>")
@operation(ShownArchivePolicy, body=ArchivePolicyPatch)
def patch_policy(name: str):
    """Change a policy's definition while no metric uses it."""
    current = _load(name)
    body = body_as(ArchivePolicyPatch)
    policy = _policy(name, body.definition, list(current.aggregation_methods),
                     current.back_window)
    try:
        get_store().index.replace_policy(policy)
    except Conflict as exc:
        raise ApiError(400, f"{exc}: RRD files cannot change their layout") from None
    return jsonio.response(policy.to_gnocchi())


@bp.delete("/archive_policy/<name>")
@operation(status=204)
def delete_policy(name: str):
    """Delete a policy no metric or rule uses."""
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
@operation({"type": "array", "items": ShownArchivePolicyRule})
def list_rules():
    """Every archive policy rule."""
    return jsonio.response([_rule(r) for r in get_store().index.rules()])


@bp.post("/archive_policy_rule")
@operation(ShownArchivePolicyRule, status=201, body=ArchivePolicyRuleCreate)
def create_rule():
    """Create an archive policy rule."""
    body = body_as(ArchivePolicyRuleCreate)
    name, pattern, policy = body.name, body.metric_pattern.strip(), body.archive_policy_name
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
@operation(ShownArchivePolicyRule)
def show_rule(name: str):
    """One archive policy rule."""
    try:
        return jsonio.response(_rule(get_store().index.rule(name)))
    except NotFound:
        raise not_found(f"Archive policy rule {name}") from None


@bp.delete("/archive_policy_rule/<name>")
@operation(status=204)
def delete_rule(name: str):
    """Delete an archive policy rule."""
    try:
        get_store().index.delete_rule(name)
    except NotFound:
        raise not_found(f"Archive policy rule {name}") from None
    return Response(status=204)
