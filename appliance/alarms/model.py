"""Alarms in Aodh's v2 representation: a request body checked into an :class:`Alarm`, and back.

Pure: no I/O. The body is a pydantic model per alarm type (common fields here, rules in
:mod:`appliance.alarms.rules`), which is also what the OpenAPI document shows. What needs the
index (does the metric exist, is the granularity in its archive policy) is checked in
:mod:`appliance.alarms.checks`. Rules are kept as plain JSON-able dicts with every default
filled in, which is also how they are stored and shown.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Union

from croniter import croniter
from pydantic import (
    AfterValidator,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    create_model,
    model_validator,
)

from appliance.alarms.rules import COMPOSITE, EVENT, RULE_TYPES, RULES, Tree, plain
from appliance.validation import (
    CUSTOM,
    Body,
    PositiveInt,
    StrictBool,
    Text,
    describe,
    fail,
    one_of,
    tag,
)

OK, ALARM, UNKNOWN = "ok", "alarm", "insufficient data"
STATES = (OK, ALARM, UNKNOWN)
SEVERITIES = ("low", "moderate", "critical")
ACTION_SCHEMES = ("log", "http", "https")
ACTION_KINDS = {OK: "ok_actions", ALARM: "alarm_actions", UNKNOWN: "insufficient_data_actions"}


class InvalidAlarm(ValueError):
    """The body does not describe a valid alarm; the message says which field and why."""


def leaves(alarm_type: str, rule: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every ``(type, rule)`` leaf of an alarm's rule, in document order."""
    if alarm_type != COMPOSITE:
        return [(alarm_type, rule)]
    if "type" in rule:
        return [(rule["type"], rule)]
    (children,) = rule.values()
    return [leaf for child in children for leaf in leaves(COMPOSITE, child)]


# --- the body's fields besides the rule --------------------------------------------------------

def _action_url(url: str) -> str:
    scheme = url.partition(":")[0].lower()
    if scheme not in ACTION_SCHEMES or "://" not in url:
        raise fail(f"is not an action URL ({', '.join(ACTION_SCHEMES)}): {url!r}")
    return url


def _cron(start: str) -> str:
    if not croniter.is_valid(start):
        raise fail(f"is not a cron expression: {start!r}")
    return start


def _zone(name: str | None) -> str:
    if name:
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise fail(f"is not a time zone: {name!r}") from None
    return name or ""


class TimeConstraint(Body):
    """When the alarm is evaluated: from each ``start`` (cron) for ``duration`` seconds."""

    name: Text
    description: str | None = None
    start: Annotated[Text, AfterValidator(_cron)]
    duration: PositiveInt
    timezone: Annotated[str | None, AfterValidator(_zone)] = ""

    @model_validator(mode="after")
    def _described(self) -> TimeConstraint:
        if not self.description:
            self.description = (f"Time constraint at {self.start} lasting for "
                                f"{self.duration} seconds")
        return self


def _distinct_names(constraints: list[TimeConstraint]) -> list[TimeConstraint]:
    names = [tc.name for tc in constraints]
    for name in names:
        if names.count(name) > 1:
            raise fail(f"use the name {name!r} twice")
    return constraints


def _distinct(urls: list[str]) -> list[str]:
    return list(dict.fromkeys(urls))


Actions = Annotated[list[Annotated[str, AfterValidator(_action_url)]] | None,
                    AfterValidator(lambda urls: _distinct(urls or []))]


class AlarmFields(Body):
    """What every alarm body has besides its ``<type>_rule``. Read-only attributes of the
    shown alarm are accepted and ignored, as Aodh does, so a shown alarm can be sent back."""

    name: Text
    description: str | None = None
    enabled: StrictBool = True
    severity: one_of(*SEVERITIES) = "low"  # type: ignore[valid-type]
    state: one_of(*STATES) | None = None  # type: ignore[valid-type]
    state_reason: str | None = None
    ok_actions: Actions = []
    alarm_actions: Actions = []
    insufficient_data_actions: Actions = []
    repeat_actions: StrictBool = False
    time_constraints: Annotated[list[TimeConstraint] | None,
                                AfterValidator(lambda tcs: _distinct_names(tcs or []))] = []
    alarm_id: Any = Field(None, json_schema_extra={"readOnly": True})
    timestamp: Any = Field(None, json_schema_extra={"readOnly": True})
    state_timestamp: Any = Field(None, json_schema_extra={"readOnly": True})
    evaluate_timestamp: Any = Field(None, json_schema_extra={"readOnly": True})
    user_id: Any = Field(None, json_schema_extra={"readOnly": True})
    project_id: Any = Field(None, json_schema_extra={"readOnly": True})

    @model_validator(mode="before")
    @classmethod
    def _one_rule(cls, data: Any) -> Any:
        if isinstance(data, dict):
            rule_key = f"{data['type']}_rule"
            if [k for k in data if k.endswith("_rule")] != [rule_key]:
                raise fail(f"an alarm of type {data['type']} takes exactly one rule, {rule_key}")
        return data


def _camel(name: str) -> str:
    return "".join(part.title() for part in name.split("_"))


def _variant(type_: str, rule: Any) -> Any:
    """The body of one alarm type: ``type`` and ``<type>_rule`` over the common fields."""
    model = create_model(f"{_camel(type_)}Alarm", __base__=AlarmFields,
                         type=(one_of(type_), ...), **{f"{type_}_rule": (rule, ...)})
    return Annotated[model, Tag(tag(type_))]


def _alarm_type(body: Any) -> str | None:
    type_ = body.get("type") if isinstance(body, dict) else None
    return tag(type_) if type_ in RULE_TYPES else None


#: An alarm as a client sends it (and as the API shows it), one model per type.
AlarmBody = Annotated[
    Union[(*(_variant(t, m) for t, m in RULES.items()), _variant(COMPOSITE, Tree))],  # noqa: UP007
    Discriminator(_alarm_type, custom_error_type=CUSTOM,
                  custom_error_message=f"type must be one of {', '.join(RULE_TYPES)}"),
]
_ALARM_BODY: TypeAdapter[Any] = TypeAdapter(AlarmBody)


@dataclass(slots=True)
class Alarm:
    alarm_id: str
    name: str
    type: str
    rule: dict[str, Any]
    description: str = ""
    enabled: bool = True
    severity: str = "low"
    state: str = UNKNOWN
    state_reason: str = "Not evaluated yet"
    state_timestamp: float = 0.0
    timestamp: float = 0.0
    ok_actions: list[str] = field(default_factory=list)
    alarm_actions: list[str] = field(default_factory=list)
    insufficient_data_actions: list[str] = field(default_factory=list)
    repeat_actions: bool = False
    time_constraints: list[dict[str, Any]] = field(default_factory=list)

    def actions_for(self, state: str) -> list[str]:
        return getattr(self, ACTION_KINDS[state])

    def leaves(self) -> list[tuple[str, dict[str, Any]]]:
        return leaves(self.type, self.rule)


def parse_alarm(body: Any, now: float, previous: Alarm | None = None) -> Alarm:
    """A create (``previous`` None) or full-replacement update body -> a valid Alarm.

    On update, omitted fields take their defaults as with Aodh's PUT, except the state,
    which is kept unless the body sets it.
    """
    if not isinstance(body, dict):
        raise InvalidAlarm("the body must be a JSON object describing an alarm")
    try:
        data = _ALARM_BODY.validate_python(body)
    except ValidationError as exc:
        raise InvalidAlarm(describe(exc)) from None
    rule = plain(getattr(data, f"{data.type}_rule"))
    alarm = Alarm(
        alarm_id=previous.alarm_id if previous else str(uuid.uuid4()),
        name=data.name,
        type=data.type,
        rule=rule,
        description=data.description or f"Alarm when {rule_summary(data.type, rule)}",
        enabled=data.enabled,
        severity=data.severity,
        ok_actions=data.ok_actions,
        alarm_actions=data.alarm_actions,
        insufficient_data_actions=data.insufficient_data_actions,
        repeat_actions=data.repeat_actions,
        time_constraints=[tc.model_dump() for tc in data.time_constraints],
        timestamp=now,
        state_timestamp=previous.state_timestamp if previous else now,
    )
    if previous is not None:
        alarm.state, alarm.state_reason = previous.state, previous.state_reason
    if data.state is not None and (previous is None or data.state != previous.state):
        alarm.state, alarm.state_timestamp = data.state, now
        alarm.state_reason = "Manually set via API"
    return alarm


def rule_summary(type_: str, rule: dict[str, Any]) -> str:
    """A short human description, Aodh-style (``cpu > 90.0 during 3 x 60s``)."""
    if type_ == COMPOSITE:
        return "the composite rule holds"
    if type_ == EVENT:
        return f"a {rule['event_type']} event within {rule['window']}s"
    if type_ == "rrd_forecast":
        return (f"{rule['aggregation_method']} leaves its {rule['seasons']}-season forecast "
                f"during {rule['evaluation_periods']} x {rule['granularity']}s")
    ops = {"lt": "<", "le": "<=", "eq": "==", "ne": "!=", "ge": ">=", "gt": ">"}
    return (f"{rule['aggregation_method']} {ops[rule['comparison_operator']]} "
            f"{rule['threshold']} during {rule['evaluation_periods']} x {rule['granularity']}s")


def iso8601(ts: float) -> str:
    """Aodh's timestamps; kept here so the evaluator process needs nothing from the API."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


def to_json(alarm: Alarm) -> dict[str, Any]:
    """The alarm as Aodh v2 shows it (also the detail of creation and deletion history)."""
    return {
        "alarm_id": alarm.alarm_id,
        "name": alarm.name,
        "description": alarm.description,
        "type": alarm.type,
        f"{alarm.type}_rule": alarm.rule,
        "enabled": alarm.enabled,
        "state": alarm.state,
        "state_reason": alarm.state_reason,
        "state_timestamp": iso8601(alarm.state_timestamp),
        "timestamp": iso8601(alarm.timestamp),
        "severity": alarm.severity,
        "ok_actions": alarm.ok_actions,
        "alarm_actions": alarm.alarm_actions,
        "insufficient_data_actions": alarm.insufficient_data_actions,
        "repeat_actions": alarm.repeat_actions,
        "time_constraints": alarm.time_constraints,
        "user_id": None,
        "project_id": None,
    }


def definition(alarm: Alarm) -> dict[str, Any]:
    """What a user configured (no state): stored as JSON, diffed for "rule change" history."""
    return {
        "name": alarm.name,
        "description": alarm.description,
        "type": alarm.type,
        "rule": alarm.rule,
        "enabled": alarm.enabled,
        "severity": alarm.severity,
        "ok_actions": alarm.ok_actions,
        "alarm_actions": alarm.alarm_actions,
        "insufficient_data_actions": alarm.insufficient_data_actions,
        "repeat_actions": alarm.repeat_actions,
        "time_constraints": alarm.time_constraints,
    }


def from_definition(alarm_id: str, data: dict[str, Any], **state: Any) -> Alarm:
    return replace(Alarm(alarm_id=alarm_id, name=data["name"], type=data["type"],
                         rule=data["rule"]),
                   **{k: v for k, v in data.items() if k not in ("name", "type", "rule")},
                   **state)
