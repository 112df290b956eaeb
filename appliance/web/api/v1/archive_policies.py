"""``/v1/archive_policy`` and ``/v1/archive_policy_rule``.

A policy is laid out as RRAs when a metric's RRD file is created. A PATCH may change a
policy in use (granularities, timespans, aggregation methods): every file on it is then
rebuilt in the new layout with its data (:mod:`appliance.retention`), and the policy's GET
and ``/v1/status`` show how many metrics still wait. Only the finest granularity (the files'
step) stays as it is while metrics use the policy. A policy in use cannot be deleted (as in
Gnocchi).
"""

from __future__ import annotations

from typing import Annotated, Any

from flask import Blueprint, Response
from pydantic import BaseModel, BeforeValidator, Field, Strict, WithJsonSchema, model_validator

from appliance import retention
from appliance.index import Conflict, NotFound, rebuilds
from appliance.model import AGGREGATION_METHODS, ArchivePolicy, make_policy
from appliance.validation import Body, Name, fail, one_of
from appliance.web.api import jsonio
from appliance.web.api.errors import ApiError, bad_param, not_found
from appliance.web.api.openapi import operation
from appliance.web.api.params import body_as, duration_seconds
from appliance.web.api.serialize import ShownArchivePolicy
from appliance.web.context import get_settings, get_store

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
    """A policy's definition and aggregation methods can change, in use or not (its files
    are rebuilt); while metrics use it, its finest granularity stays."""

    definition: Definition | None = None
    aggregation_methods: Annotated[
        list[one_of(*AGGREGATION_METHODS)], Field(min_length=1)  # type: ignore[valid-type]
    ] | None = None

    @model_validator(mode="after")
    def _something(self) -> ArchivePolicyPatch:
        if self.definition is None and self.aggregation_methods is None:
            raise fail("give definition, aggregation_methods or both")
        return self


class ShownPolicyChange(ShownArchivePolicy):
    """A policy, with how many of its metric files still wait for a change's new layout."""

    rebuilding_metrics: int | None = None


class ArchivePolicyRuleCreate(Body):
    """A rule: metrics whose name matches ``metric_pattern`` get ``archive_policy_name``."""

    name: Name
    metric_pattern: Name
    archive_policy_name: Name


class ShownArchivePolicyRule(BaseModel):
    name: str
    metric_pattern: str
    archive_policy_name: str


def _policy(name: str, definition: list[tuple[int, int]], methods: list[str],
            back_window: int) -> ArchivePolicy:
    try:
        return make_policy(name, definition, sorted(set(methods)), back_window)
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
    policy = _policy(body.name, [item.pair() for item in body.definition],
                     body.aggregation_methods, body.back_window)
    try:
        get_store().index.create_policy(policy)
    except Conflict as exc:
        raise ApiError(409, str(exc)) from None
    return jsonio.response(
        policy.to_gnocchi(), 201, {"Location": f"/v1/archive_policy/{policy.name}"}
    )


@bp.get("/archive_policy/<name>")
@operation(ShownPolicyChange)
def show_policy(name: str):
    """One archive policy (with ``rebuilding_metrics`` while a change is applied)."""
    return jsonio.response(_shown(_load(name)))


@bp.patch("/archive_policy/<name>")
@operation(ShownPolicyChange, body=ArchivePolicyPatch)
def patch_policy(name: str):
    """Change a policy's definition or aggregation methods; files in use are rebuilt."""
    current = _load(name)
    body = body_as(ArchivePolicyPatch)
    definition = ([item.pair() for item in body.definition] if body.definition is not None
                  else [(i.granularity, i.points) for i in current.definition])
    policy = _policy(name, definition, body.aggregation_methods or
                     list(current.aggregation_methods), current.back_window)
    index = get_store().index
    if policy.step != current.step and rebuilds.metric_count(index, name):
        raise bad_param(
            "definition",
            f"the finest granularity ({current.step} s) is the step of the RRD files of "
            f"the metrics on {name!r} and cannot change while they exist",
        )
    if index.change_policy(policy):
        retention.rebuild_in_background(get_settings())
    return jsonio.response(_shown(policy))


def _shown(policy: ArchivePolicy) -> dict[str, Any]:
    """Gnocchi's shape, plus how many metric files still wait for a change's new layout."""
    out = policy.to_gnocchi()
    waiting = rebuilds.progress(get_store().index).get(policy.name)
    if waiting:
        out["rebuilding_metrics"] = waiting
    return out


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


class ArchivePolicyRulePatch(Body):
    """Gnocchi's only change to a rule: its name."""

    name: Name


@bp.patch("/archive_policy_rule/<name>")
@operation(ShownArchivePolicyRule, body=ArchivePolicyRulePatch)
def rename_rule(name: str):
    """Rename an archive policy rule (what it matches stays)."""
    new_name = body_as(ArchivePolicyRulePatch).name
    index = get_store().index
    try:
        index.rename_rule(name, new_name)
    except NotFound:
        raise not_found(f"Archive policy rule {name}") from None
    except Conflict as exc:
        raise ApiError(409, str(exc)) from None
    return jsonio.response(_rule(index.rule(new_name)))


@bp.delete("/archive_policy_rule/<name>")
@operation(status=204)
def delete_rule(name: str):
    """Delete an archive policy rule."""
    try:
        get_store().index.delete_rule(name)
    except NotFound:
        raise not_found(f"Archive policy rule {name}") from None
    return Response(status=204)
