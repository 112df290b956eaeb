"""The rules of an alarm, one pydantic model per rule type (Aodh's fields and defaults).

A rule is stored and shown as a plain dict with every default filled in (``plain``); the
models are how a client's rule is checked, and the OpenAPI document shows them as they are.
What needs the index (does the metric exist, is the granularity in its policy) is checked in
:mod:`appliance.alarms.checks`.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Union

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    model_validator,
)

from appliance.model import AGGREGATION_METHODS
from appliance.validation import (
    CUSTOM,
    Body,
    NonNegative,
    Number,
    PositiveInt,
    Text,
    UUIDText,
    fail,
    one_of,
    tag,
)

COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    "lt": operator.lt, "le": operator.le, "eq": operator.eq,
    "ne": operator.ne, "ge": operator.ge, "gt": operator.gt,
}
COMPOSITE = "composite"
EVENT = "event"
MAX_COMPOSITE_DEPTH = 8
MAX_SEASONS = 20

Aggregation = one_of(*AGGREGATION_METHODS)


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _search_filter(value: Any) -> Any:
    """Aodh carries the Gnocchi search filter as a JSON string; a mapping is accepted too."""
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, str) and value.strip():
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            raise fail("must be a JSON search filter") from None
        if not isinstance(parsed, dict):
            raise fail("must be a JSON object")
    return value


class Rule(Body):
    """A rule: ``None`` for a field means its default, as with Aodh."""

    TYPE: ClassVar[str]

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data

    type: str | None = Field(None, exclude=True,
                             description="The rule's type: required in a composite tree")


class Threshold(Rule):
    """The fields every threshold rule has (Aodh's defaults)."""

    comparison_operator: one_of(*COMPARATORS) = "eq"  # type: ignore[valid-type]
    threshold: Number
    aggregation_method: Aggregation = "mean"  # type: ignore[valid-type]
    granularity: PositiveInt = 60
    evaluation_periods: PositiveInt = 1


class ResourcesThreshold(Threshold):
    """One metric (by name) of one resource."""

    TYPE = "gnocchi_resources_threshold"
    metric: Text
    resource_id: Text
    resource_type: Text


class MetricsThreshold(Threshold):
    """Metrics by id, aggregated together."""

    TYPE = "gnocchi_aggregation_by_metrics_threshold"
    metrics: Annotated[list[UUIDText], Field(min_length=1), AfterValidator(_unique)]


class SearchThreshold(Threshold):
    """One metric name across the resources a search finds."""

    TYPE = "gnocchi_aggregation_by_resources_threshold"
    metric: Text
    resource_type: Text
    query: Annotated[Text, BeforeValidator(_search_filter)]


class MovingAverage(Threshold):
    """The mean of the last ``window`` seconds (rrdtool's TREND), against the threshold."""

    TYPE = "rrd_moving_average_threshold"
    metric: UUIDText
    window: PositiveInt


class Forecast(Rule):
    """Breaches when a point leaves prediction +- max(deviations * sigma, min_deviation), the
    prediction being rrdtool's PREDICT over the same time in the previous ``seasons``."""

    TYPE = "rrd_forecast"
    metric: UUIDText
    aggregation_method: Aggregation = "mean"  # type: ignore[valid-type]
    granularity: PositiveInt = 60
    evaluation_periods: PositiveInt = 1
    season: PositiveInt = 86400
    seasons: Annotated[PositiveInt, Field(le=MAX_SEASONS)] = 3
    window: PositiveInt
    deviations: NonNegative = 3.0
    min_deviation: NonNegative = 0.0

    @model_validator(mode="after")
    def _season_fits(self) -> Forecast:
        if self.season % self.granularity or self.window < self.granularity:
            raise fail("season must be a multiple of granularity and window at least one")
        return self


class EventRule(Rule):
    """Aodh's event alarm over the index's events (SNMP traps): in alarm while an event whose
    type matches the shell glob ``event_type`` (``snmp.trap.linkDown``, ``snmp.trap.*``), of
    ``resource_id`` if given, arrived within the last ``window`` seconds; ok after."""

    TYPE = EVENT
    event_type: Text
    resource_id: Text | None = None
    window: PositiveInt = 600


#: Each rule type's model, by Aodh's type name.
RULES: dict[str, type[Rule]] = {
    m.TYPE: m for m in (ResourcesThreshold, MetricsThreshold, SearchThreshold, MovingAverage,
                        Forecast, EventRule)
}
RULE_TYPES = (*RULES, COMPOSITE)


# --- composite rules: {"and" | "or": [node, ...]}, leaves being typed rules -----------------

def _node_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        if set(value) in ({"and"}, {"or"}):
            return tag(next(iter(value)))
        if value.get("type") in RULES:
            return tag(value["type"])
    return None


def _branch_kind(value: Any) -> str | None:
    kind = _node_kind(value)
    return kind if kind in (tag("and"), tag("or")) else None


def _depth(value: Any) -> int:
    if isinstance(value, dict) and set(value) in ({"and"}, {"or"}):
        children = next(iter(value.values()))
        if isinstance(children, list):
            return 1 + max((_depth(c) for c in children), default=0)
    return 0


def _not_too_deep(value: Any) -> Any:
    if _depth(value) > MAX_COMPOSITE_DEPTH:
        raise fail(f"must not nest more than {MAX_COMPOSITE_DEPTH} deep")
    return value


#: How the document shows a node below the root: the tree is recursive, and the fuzzer's
#: schema-to-data generator (hypothesis-jsonschema) cannot follow a recursive ``$ref``.
_NODE_SCHEMA = WithJsonSchema({
    "type": "object",
    "description": 'A rule with its "type", or {"and": [...]} or {"or": [...]} of nodes',
})


class And(Body):
    and_: Annotated[list[Annotated[Node, _NODE_SCHEMA]], Field(alias="and", min_length=1)]


class Or(Body):
    or_: Annotated[list[Annotated[Node, _NODE_SCHEMA]], Field(alias="or", min_length=1)]


_AND_OR = (Annotated[And, Tag(tag("and"))], Annotated[Or, Tag(tag("or"))])
Node = Annotated[
    Union[(*_AND_OR, *(Annotated[m, Tag(tag(t))] for t, m in RULES.items()))],  # noqa: UP007
    Discriminator(_node_kind, custom_error_type=CUSTOM, custom_error_message=(
        'must be {"and": [...]}, {"or": [...]} or a rule whose type is one of '
        + ", ".join(RULES))),
]
And.model_rebuild()
Or.model_rebuild()
#: A composite alarm's rule: a tree whose root combines nodes.
Tree = Annotated[
    Union[_AND_OR],  # noqa: UP007
    Discriminator(_branch_kind, custom_error_type=CUSTOM,
                  custom_error_message='must combine rules with "and" or "or"'),
    BeforeValidator(_not_too_deep),
]


def plain(rule: And | Or | Rule) -> dict[str, Any]:
    """A validated rule (or tree) as stored and shown: JSON-able, every default filled in;
    a leaf of a tree keeps its ``type``."""
    if isinstance(rule, And):
        return {"and": [_leaf(child) for child in rule.and_]}
    if isinstance(rule, Or):
        return {"or": [_leaf(child) for child in rule.or_]}
    return rule.model_dump()


def _leaf(node: And | Or | Rule) -> dict[str, Any]:
    return plain(node) if isinstance(node, And | Or) else {"type": node.TYPE, **plain(node)}
