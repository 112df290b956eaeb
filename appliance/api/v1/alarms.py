"""``/v1/alarm``: alarms in Aodh's v2 representation (create, list, show, update, delete,
history, state). Parsing is :mod:`appliance.alarms.model`, index checks
:mod:`appliance.alarms.checks`; this module only maps HTTP onto them.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, jsonify, request

from appliance.alarms.checks import check
from appliance.alarms.model import STATES, Alarm, InvalidAlarm, parse_alarm, to_json
from appliance.alarms.store import AlarmStore
from appliance.api.errors import ApiError, bad_param, not_found
from appliance.api.params import arg, iso, json_body, parse_int, parse_uuid
from appliance.api.v1.pagination import link_next
from appliance.index import Conflict, NotFound
from appliance.webcontext import get_store

bp = Blueprint("alarms", __name__)

MAX_LIMIT = 1000
#: Fields an alarm listing may be filtered on with Aodh's ``q.field/q.op/q.value``.
FILTERS = ("name", "type", "state", "severity", "enabled")


def _alarms() -> AlarmStore:
    return AlarmStore(get_store().index)


def _load(alarm_id: str) -> Alarm:
    try:
        return _alarms().get(parse_uuid("alarm_id", alarm_id))
    except NotFound:
        raise not_found(f"Alarm {alarm_id}") from None


def _parse(body: Any, previous: Alarm | None = None) -> Alarm:
    try:
        alarm = parse_alarm(body, time.time(), previous)
        check(alarm, get_store().index)
    except InvalidAlarm as exc:
        raise ApiError(400, str(exc)) from None
    return alarm


def _filters() -> dict[str, Any]:
    """Aodh's ``q.field=state&q.op=eq&q.value=alarm`` (equality only)."""
    fields, ops, values = (request.args.getlist(f"q.{k}") for k in ("field", "op", "value"))
    if len(fields) != len(values) or (ops and len(ops) != len(fields)):
        raise bad_param("q", "each q.field needs a q.value (and q.op, if any)")
    out: dict[str, Any] = {}
    for i, (name, value) in enumerate(zip(fields, values, strict=True)):
        if name not in FILTERS:
            raise bad_param("q.field", f"{name!r} is not one of {', '.join(FILTERS)}")
        if ops and ops[i] not in ("eq", "="):
            raise bad_param("q.op", f"{ops[i]!r}: only eq is supported")
        if name == "enabled":
            if value.lower() not in ("true", "false"):
                raise bad_param("q.value", f"{value!r} is not a boolean")
            value = int(value.lower() == "true")
        out[name] = value
    return out


@bp.post("/alarm")
def create_alarm():
    alarm = _parse(json_body())
    try:
        _alarms().create(alarm)
    except Conflict as exc:
        raise ApiError(409, str(exc)) from None
    response = jsonify(to_json(alarm))
    response.status_code = 201
    response.headers["Location"] = f"{request.base_url}/{alarm.alarm_id}"
    return response


@bp.get("/alarm")
def list_alarms():
    limit = parse_int("limit", arg("limit"), MAX_LIMIT, 1, MAX_LIMIT)
    marker = arg("marker")
    if marker is not None:
        marker = parse_uuid("marker", marker)
    alarms = _alarms().list(_filters(), limit=limit, marker=marker)
    response = jsonify([to_json(a) for a in alarms])
    if len(alarms) == limit:
        link_next(response, alarms[-1].alarm_id)
    return response


@bp.get("/alarm/<alarm_id>")
def show_alarm(alarm_id: str):
    return jsonify(to_json(_load(alarm_id)))


def _replace(previous: Alarm, body: Any):
    alarm = _parse(body, previous)
    try:
        _alarms().update(alarm)
    except Conflict as exc:
        raise ApiError(409, str(exc)) from None
    except NotFound:
        raise not_found(f"Alarm {previous.alarm_id}") from None
    return jsonify(to_json(alarm))


@bp.put("/alarm/<alarm_id>")
def update_alarm(alarm_id: str):
    """Aodh's PUT: the body is the whole alarm; omitted fields take their defaults."""
    return _replace(_load(alarm_id), json_body())


@bp.patch("/alarm/<alarm_id>")
def patch_alarm(alarm_id: str):
    """A JSON merge of the body into the alarm as shown (a rule object is replaced whole)."""
    previous = _load(alarm_id)
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object of fields to change")
    merged = {k: v for k, v in to_json(previous).items() if v is not None}
    if "type" in body and body["type"] != previous.type:
        merged.pop(f"{previous.type}_rule")
    merged.update(body)
    return _replace(previous, merged)


@bp.delete("/alarm/<alarm_id>")
def delete_alarm(alarm_id: str):
    alarm = _load(alarm_id)
    try:
        _alarms().delete(alarm.alarm_id, time.time())
    except NotFound:
        raise not_found(f"Alarm {alarm_id}") from None
    return "", 204


@bp.get("/alarm/<alarm_id>/history")
def alarm_history(alarm_id: str):
    """Newest first; kept after deletion, as Aodh does."""
    alarm_id = parse_uuid("alarm_id", alarm_id)
    limit = parse_int("limit", arg("limit"), MAX_LIMIT, 1, MAX_LIMIT)
    events = _alarms().history(alarm_id, limit)
    if not events:
        _load(alarm_id)  # 404 for an alarm that never existed
    return jsonify([
        {"event_id": e["event_id"], "alarm_id": e["alarm_id"], "type": e["type"],
         "detail": e["detail"], "severity": e["severity"], "timestamp": iso(e["timestamp"]),
         "user_id": None, "project_id": None, "on_behalf_of": None}
        for e in events
    ])


@bp.get("/alarm/<alarm_id>/state")
def get_state(alarm_id: str):
    return jsonify(_load(alarm_id).state)


@bp.put("/alarm/<alarm_id>/state")
def set_state(alarm_id: str):
    """Body: a JSON string, one of the states; recorded as a state transition."""
    previous = _load(alarm_id)
    state = json_body()
    if state not in STATES:
        raise bad_param("state", f"{state!r} is not one of {', '.join(STATES)}")
    body = {k: v for k, v in to_json(previous).items() if v is not None}
    body["state"] = state
    return jsonify(_replace(previous, body).get_json()["state"])


# --- OpenAPI (merged into /v1/openapi.json by the document's owner) ---------------------------

_ID = {"name": "alarm_id", "in": "path", "required": True,
       "schema": {"type": "string", "format": "uuid"}}
_ERR = {"description": "Error", "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/Error"}}}}
_ALARM_REF = {"$ref": "#/components/schemas/Alarm"}
_ALARM = {"content": {"application/json": {"schema": _ALARM_REF}}}
_STATE = {"type": "string", "enum": list(STATES)}


def _ok(description: str, schema: dict | None = None) -> dict:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {"application/json": {"schema": schema}}
    return out


OPENAPI_SCHEMAS: dict[str, Any] = {
    "Alarm": {
        "type": "object",
        "description": "An alarm in Aodh's v2 representation; the rule is in `<type>_rule`.",
        "required": ["name", "type"],
        "properties": {
            "alarm_id": {"type": "string", "format": "uuid", "readOnly": True},
            "name": {"type": "string", "minLength": 1},
            "description": {"type": "string"},
            "type": {"type": "string", "enum": [
                "gnocchi_resources_threshold", "gnocchi_aggregation_by_metrics_threshold",
                "gnocchi_aggregation_by_resources_threshold", "rrd_moving_average_threshold",
                "rrd_forecast", "composite"]},
            "enabled": {"type": "boolean"},
            "state": _STATE,
            "state_reason": {"type": "string"},
            "state_timestamp": {"type": "string", "format": "date-time", "readOnly": True},
            "timestamp": {"type": "string", "format": "date-time", "readOnly": True},
            "severity": {"type": "string", "enum": ["low", "moderate", "critical"]},
            "ok_actions": {"type": "array", "items": {"type": "string"}},
            "alarm_actions": {"type": "array", "items": {"type": "string"}},
            "insufficient_data_actions": {"type": "array", "items": {"type": "string"}},
            "repeat_actions": {"type": "boolean"},
            "time_constraints": {"type": "array", "items": {
                "type": "object", "required": ["name", "start", "duration"],
                "properties": {"name": {"type": "string"}, "description": {"type": "string"},
                               "start": {"type": "string"},
                               "duration": {"type": "integer", "minimum": 1},
                               "timezone": {"type": "string"}}}},
        },
        "additionalProperties": True,
    },
}

def _common_errors(paths: dict[str, Any]) -> dict[str, Any]:
    """Every operation needs a token (401); every body must be JSON (415)."""
    for item in paths.values():
        for method, op in item.items():
            if method != "parameters":
                op["responses"].setdefault("401", _ERR)
                if method in ("post", "put", "patch"):
                    op["responses"].setdefault("415", _ERR)
    return paths


OPENAPI_PATHS: dict[str, Any] = _common_errors({
    "/v1/alarm": {
        "get": {"summary": "List alarms", "tags": ["alarms"], "parameters": [
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                        "maximum": MAX_LIMIT}},
            {"name": "marker", "in": "query", "schema": {"type": "string", "format": "uuid"}},
            {"name": "q.field", "in": "query", "schema": {"type": "string", "enum": FILTERS}},
            {"name": "q.op", "in": "query", "schema": {"type": "string", "enum": ["eq"]}},
            {"name": "q.value", "in": "query", "schema": {"type": "string"}},
        ], "responses": {"200": _ok("Alarms", {"type": "array", "items": _ALARM_REF}),
                         "400": _ERR, "401": _ERR}},
        "post": {"summary": "Create an alarm", "tags": ["alarms"], "requestBody": {
            "required": True, **_ALARM},
            "responses": {"201": {"description": "Created", **_ALARM}, "400": _ERR,
                          "401": _ERR, "403": _ERR, "409": _ERR, "415": _ERR}},
    },
    "/v1/alarm/{alarm_id}": {
        "parameters": [_ID],
        "get": {"summary": "Show an alarm", "tags": ["alarms"],
                "responses": {"200": {"description": "The alarm", **_ALARM}, "404": _ERR}},
        "put": {"summary": "Replace an alarm", "tags": ["alarms"],
                "requestBody": {"required": True, **_ALARM},
                "responses": {"200": {"description": "The alarm", **_ALARM}, "400": _ERR,
                              "403": _ERR, "404": _ERR, "409": _ERR}},
        "patch": {"summary": "Change some fields of an alarm", "tags": ["alarms"],
                  "requestBody": {"required": True, "content": {"application/json": {
                      "schema": {"type": "object"}}}},
                  "responses": {"200": {"description": "The alarm", **_ALARM}, "400": _ERR,
                                "403": _ERR, "404": _ERR, "409": _ERR}},
        "delete": {"summary": "Delete an alarm", "tags": ["alarms"],
                   "responses": {"204": _ok("Deleted"), "403": _ERR, "404": _ERR}},
    },
    "/v1/alarm/{alarm_id}/history": {
        "parameters": [_ID],
        "get": {"summary": "An alarm's history, newest first", "tags": ["alarms"],
                "responses": {"200": _ok("Events", {"type": "array", "items": {
                    "type": "object", "properties": {
                        "event_id": {"type": "string"}, "alarm_id": {"type": "string"},
                        "type": {"type": "string", "enum": [
                            "creation", "rule change", "state transition", "deletion"]},
                        "detail": {"type": "string"}, "severity": {"type": "string"},
                        "timestamp": {"type": "string", "format": "date-time"}}}}),
                    "404": _ERR}},
    },
    "/v1/alarm/{alarm_id}/state": {
        "parameters": [_ID],
        "get": {"summary": "An alarm's state", "tags": ["alarms"],
                "responses": {"200": _ok("The state", _STATE), "404": _ERR}},
        "put": {"summary": "Set an alarm's state", "tags": ["alarms"],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": _STATE}}},
                "responses": {"200": _ok("The state", _STATE), "400": _ERR, "403": _ERR,
                              "404": _ERR}},
    },
})
