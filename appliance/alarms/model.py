"""Alarms in Aodh's v2 representation: parse a request body into an :class:`Alarm`, and back.

Pure: no I/O. What needs the index (does the metric exist, is the granularity in its archive
policy) is checked in :mod:`appliance.alarms.checks`. Rules are kept as plain JSON-able dicts
with every default filled in, which is also how they are stored and shown.
"""

from __future__ import annotations

import datetime as dt
import json
import operator
import uuid
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from croniter import croniter

from appliance.storage.policy import CF_FOR_AGGREGATION

OK, ALARM, UNKNOWN = "ok", "alarm", "insufficient data"
STATES = (OK, ALARM, UNKNOWN)
SEVERITIES = ("low", "moderate", "critical")
COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    "lt": operator.lt, "le": operator.le, "eq": operator.eq,
    "ne": operator.ne, "ge": operator.ge, "gt": operator.gt,
}
ACTION_SCHEMES = ("log", "http", "https")
ACTION_KINDS = {OK: "ok_actions", ALARM: "alarm_actions", UNKNOWN: "insufficient_data_actions"}
COMPOSITE = "composite"
EVENT = "event"
MAX_COMPOSITE_DEPTH = 8


class InvalidAlarm(ValueError):
    """The body does not describe a valid alarm; the message says which field and why."""


# --- field converters: each takes (field path, value) and returns the clean value ----------

def _text(path: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidAlarm(f"{path} must be a non-empty string")
    return value


def _uuid(path: str, value: Any) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise InvalidAlarm(f"{path}: {value!r} is not a UUID") from None


def _number(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise InvalidAlarm(f"{path} must be a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidAlarm(f"{path} must be a finite number")
    return float(value)


def _positive_int(path: str, value: Any) -> int:
    number = _number(path, value)
    if number != int(number) or number < 1:
        raise InvalidAlarm(f"{path} must be a positive integer")
    return int(number)


def _non_negative(path: str, value: Any) -> float:
    number = _number(path, value)
    if number < 0:
        raise InvalidAlarm(f"{path} must not be negative")
    return number


def _choice(options: tuple[str, ...]) -> Callable[[str, Any], str]:
    def convert(path: str, value: Any) -> str:
        if value not in options:
            raise InvalidAlarm(f"{path}: {value!r} is not one of {', '.join(options)}")
        return value

    return convert


def _uuid_list(path: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise InvalidAlarm(f"{path} must be a non-empty list of metric ids")
    return list(dict.fromkeys(_uuid(f"{path}[{i}]", v) for i, v in enumerate(value)))


def _query(path: str, value: Any) -> str:
    """Aodh carries the Gnocchi search filter as a JSON string; a mapping is accepted too."""
    if isinstance(value, dict):
        return json.dumps(value)
    try:
        parsed = json.loads(_text(path, value))
    except json.JSONDecodeError:
        raise InvalidAlarm(f"{path} must be a JSON search filter") from None
    if not isinstance(parsed, dict):
        raise InvalidAlarm(f"{path} must be a JSON object")
    return value


REQUIRED = object()
Spec = dict[str, tuple[Callable[[str, Any], Any], Any]]

#: The fields every threshold rule has (Aodh's defaults).
THRESHOLD: Spec = {
    "comparison_operator": (_choice(tuple(COMPARATORS)), "eq"),
    "threshold": (_number, REQUIRED),
    "aggregation_method": (_choice(tuple(CF_FOR_AGGREGATION)), "mean"),
    "granularity": (_positive_int, 60),
    "evaluation_periods": (_positive_int, 1),
}

#: Each rule type's fields. ``metric`` is a metric name where a resource gives the scope,
#: and a metric id where the rule reads one metric directly.
RULE_SPECS: dict[str, Spec] = {
    "gnocchi_resources_threshold": {
        "metric": (_text, REQUIRED),
        "resource_id": (_text, REQUIRED),
        "resource_type": (_text, REQUIRED),
        **THRESHOLD,
    },
    "gnocchi_aggregation_by_metrics_threshold": {"metrics": (_uuid_list, REQUIRED), **THRESHOLD},
    "gnocchi_aggregation_by_resources_threshold": {
        "metric": (_text, REQUIRED),
        "resource_type": (_text, REQUIRED),
        "query": (_query, REQUIRED),
        **THRESHOLD,
    },
    # The mean of the last ``window`` seconds (rrdtool's TREND), compared with the threshold.
    "rrd_moving_average_threshold": {
        "metric": (_uuid, REQUIRED),
        "window": (_positive_int, REQUIRED),
        **THRESHOLD,
    },
    # Breaches when a point leaves prediction +- max(deviations * sigma, min_deviation), the
    # prediction being rrdtool's PREDICT over the same time in the previous ``seasons``.
    "rrd_forecast": {
        "metric": (_uuid, REQUIRED),
        "aggregation_method": THRESHOLD["aggregation_method"],
        "granularity": THRESHOLD["granularity"],
        "evaluation_periods": THRESHOLD["evaluation_periods"],
        "season": (_positive_int, 86400),
        "seasons": (_positive_int, 3),
        "window": (_positive_int, REQUIRED),
        "deviations": (_non_negative, 3.0),
        "min_deviation": (_non_negative, 0.0),
    },
    # Aodh's event alarm over the index's events (SNMP traps): in alarm while an event whose
    # type matches the shell glob ``event_type`` (``snmp.trap.linkDown``, ``snmp.trap.*``),
    # of ``resource_id`` if given, arrived within the last ``window`` seconds; ok after.
    EVENT: {
        "event_type": (_text, REQUIRED),
        "resource_id": (_text, None),
        "window": (_positive_int, 600),
    },
}
RULE_TYPES = (*RULE_SPECS, COMPOSITE)
MAX_SEASONS = 20


def parse_leaf(type_: str, body: Any, path: str) -> dict[str, Any]:
    """One non-composite rule with its defaults filled in; unknown fields are refused."""
    if not isinstance(body, dict):
        raise InvalidAlarm(f"{path} must be an object")
    spec = RULE_SPECS[type_]
    unknown = set(body) - set(spec) - {"type"}
    if unknown:
        raise InvalidAlarm(f"{path}: unknown field(s) {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    for name, (convert, default) in spec.items():
        if name in body and body[name] is not None:
            out[name] = convert(f"{path}.{name}", body[name])
        elif default is REQUIRED:
            raise InvalidAlarm(f"{path}.{name} is required")
        else:
            out[name] = default
    if type_ == "rrd_forecast":
        if out["seasons"] > MAX_SEASONS:
            raise InvalidAlarm(f"{path}.seasons must be at most {MAX_SEASONS}")
        if out["season"] % out["granularity"] or out["window"] < out["granularity"]:
            raise InvalidAlarm(
                f"{path}: season must be a multiple of granularity and window at least one"
            )
    return out


def parse_composite(body: Any, path: str = "composite_rule", depth: int = 0) -> dict[str, Any]:
    """Aodh's composite tree: ``{"and"|"or": [node, ...]}``, leaves being typed rules."""
    if depth > MAX_COMPOSITE_DEPTH:
        raise InvalidAlarm(f"{path}: composite rules nest at most {MAX_COMPOSITE_DEPTH} deep")
    if not isinstance(body, dict):
        raise InvalidAlarm(f"{path} must be an object")
    if set(body) in ({"and"}, {"or"}):
        (op, children), = body.items()
        if not isinstance(children, list) or not children:
            raise InvalidAlarm(f"{path}.{op} must be a non-empty list of rules")
        return {op: [parse_composite(c, f"{path}.{op}[{i}]", depth + 1)
                     for i, c in enumerate(children)]}
    type_ = body.get("type")
    if type_ not in RULE_SPECS:
        raise InvalidAlarm(
            f"{path}: a node is {{\"and\": [...]}}, {{\"or\": [...]}} or a rule whose type is "
            f"one of {', '.join(RULE_SPECS)}"
        )
    return {"type": type_, **parse_leaf(type_, body, path)}


def leaves(alarm_type: str, rule: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every ``(type, rule)`` leaf of an alarm's rule, in document order."""
    if alarm_type != COMPOSITE:
        return [(alarm_type, rule)]
    if "type" in rule:
        return [(rule["type"], rule)]
    (children,) = rule.values()
    return [leaf for child in children for leaf in leaves(COMPOSITE, child)]


def _actions(path: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidAlarm(f"{path} must be a list of URLs")
    for i, url in enumerate(value):
        scheme = url.partition(":")[0].lower() if isinstance(url, str) else ""
        if scheme not in ACTION_SCHEMES or "://" not in url:
            raise InvalidAlarm(
                f"{path}[{i}]: {url!r} is not an action URL ({', '.join(ACTION_SCHEMES)})"
            )
    return list(dict.fromkeys(value))


def _time_constraints(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidAlarm("time_constraints must be a list")
    out, names = [], set()
    for i, tc in enumerate(value):
        path = f"time_constraints[{i}]"
        if not isinstance(tc, dict):
            raise InvalidAlarm(f"{path} must be an object")
        unknown = set(tc) - {"name", "description", "start", "duration", "timezone"}
        if unknown:
            raise InvalidAlarm(f"{path}: unknown field(s) {', '.join(sorted(unknown))}")
        name = _text(f"{path}.name", tc.get("name"))
        if name in names:
            raise InvalidAlarm(f"{path}.name: {name!r} is used twice")
        names.add(name)
        start = _text(f"{path}.start", tc.get("start"))
        if not croniter.is_valid(start):
            raise InvalidAlarm(f"{path}.start: {start!r} is not a cron expression")
        duration = _positive_int(f"{path}.duration", tc.get("duration"))
        timezone = tc.get("timezone") or ""
        if timezone:
            try:
                zoneinfo.ZoneInfo(timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise InvalidAlarm(f"{path}.timezone: {timezone!r} is not a time zone") from None
        description = tc.get("description") or (
            f"Time constraint at {start} lasting for {duration} seconds"
        )
        out.append({"name": name, "description": description, "start": start,
                    "duration": duration, "timezone": timezone})
    return out


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


#: Fields a client may send besides ``<type>_rule``; others (alarm_id, timestamps) are ignored
#: as Aodh does with read-only attributes.
CLIENT_FIELDS = {
    "name", "type", "description", "enabled", "severity", "state", "state_reason",
    "ok_actions", "alarm_actions", "insufficient_data_actions", "repeat_actions",
    "time_constraints",
}
READ_ONLY = {"alarm_id", "timestamp", "state_timestamp", "user_id", "project_id",
             "evaluate_timestamp"}


def _bool(path: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidAlarm(f"{path} must be true or false")
    return value


def parse_alarm(body: Any, now: float, previous: Alarm | None = None) -> Alarm:
    """A create (``previous`` None) or full-replacement update body -> a valid Alarm.

    On update, omitted fields take their defaults as with Aodh's PUT, except the state,
    which is kept unless the body sets it.
    """
    if not isinstance(body, dict):
        raise InvalidAlarm("the body must be a JSON object describing an alarm")
    type_ = body.get("type")
    if type_ not in RULE_TYPES:
        raise InvalidAlarm(f"type must be one of {', '.join(RULE_TYPES)}")
    rule_key = f"{type_}_rule"
    rules_given = [k for k in body if k.endswith("_rule")]
    unknown = set(body) - CLIENT_FIELDS - READ_ONLY - set(rules_given)
    if unknown:
        raise InvalidAlarm(f"unknown field(s): {', '.join(sorted(unknown))}")
    if rules_given != [rule_key]:
        raise InvalidAlarm(f"an alarm of type {type_} takes exactly one rule, {rule_key}")
    if type_ == COMPOSITE:
        rule = parse_composite(body[rule_key])
        if "type" in rule:
            raise InvalidAlarm(f"{rule_key} must combine rules with \"and\" or \"or\"")
    else:
        rule = parse_leaf(type_, body[rule_key], rule_key)
    alarm = Alarm(
        alarm_id=previous.alarm_id if previous else str(uuid.uuid4()),
        name=_text("name", body.get("name")),
        type=type_,
        rule=rule,
        description=body.get("description") or f"Alarm when {rule_summary(type_, rule)}",
        enabled=_bool("enabled", body.get("enabled", True)),
        severity=_choice(SEVERITIES)("severity", body.get("severity", "low")),
        ok_actions=_actions("ok_actions", body.get("ok_actions")),
        alarm_actions=_actions("alarm_actions", body.get("alarm_actions")),
        insufficient_data_actions=_actions(
            "insufficient_data_actions", body.get("insufficient_data_actions")
        ),
        repeat_actions=_bool("repeat_actions", body.get("repeat_actions", False)),
        time_constraints=_time_constraints(body.get("time_constraints")),
        timestamp=now,
        state_timestamp=previous.state_timestamp if previous else now,
    )
    if not isinstance(alarm.description, str):
        raise InvalidAlarm("description must be a string")
    if previous is not None:
        alarm.state, alarm.state_reason = previous.state, previous.state_reason
    if body.get("state") is not None:
        state = _choice(STATES)("state", body["state"])
        if previous is None or state != previous.state:
            alarm.state, alarm.state_timestamp = state, now
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
