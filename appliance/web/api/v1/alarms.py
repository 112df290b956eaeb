"""``/v1/alarm``: alarms in Aodh's v2 representation (create, list, show, update, delete,
history, state). Parsing is :mod:`appliance.alarms.model`, index checks
:mod:`appliance.alarms.checks`; this module only maps HTTP onto them.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, jsonify, request
from pydantic import BaseModel, TypeAdapter

from appliance.alarms.checks import check
from appliance.alarms.model import (
    STATES,
    Alarm,
    AlarmBody,
    InvalidAlarm,
    parse_alarm,
    to_json,
)
from appliance.alarms.store import AlarmStore
from appliance.index import Conflict, NotFound
from appliance.validation import one_of
from appliance.web.api import jsonio
from appliance.web.api.errors import ApiError, bad_param, not_found
from appliance.web.api.openapi import UUID, Named, operation, query
from appliance.web.api.params import arg, body_as, iso, parse_int, parse_uuid
from appliance.web.api.v1.pagination import link_next
from appliance.web.context import get_store

bp = Blueprint("alarms", __name__)

MAX_LIMIT = 1000
#: Fields an alarm listing may be filtered on with Aodh's ``q.field/q.op/q.value``.
FILTERS = ("name", "type", "state", "severity", "enabled")
ALARM = Named("Alarm", AlarmBody)
STATE = Named("State", one_of(*STATES))
_STATE = TypeAdapter(STATE.annotation)
_ID = {"alarm_id": UUID}


class AlarmEvent(BaseModel):
    """One entry of an alarm's history."""

    event_id: str
    alarm_id: str
    type: one_of("creation", "rule change", "state transition", "deletion")  # type: ignore[valid-type]
    detail: str
    severity: str | None
    timestamp: str
    user_id: None
    project_id: None
    on_behalf_of: None


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
@operation(ALARM, status=201, body=ALARM)
def create_alarm():
    """Create an alarm."""
    alarm = _parse(jsonio.body())
    try:
        _alarms().create(alarm)
    except Conflict as exc:
        raise ApiError(409, str(exc)) from None
    response = jsonify(to_json(alarm))
    response.status_code = 201
    response.headers["Location"] = f"{request.base_url}/{alarm.alarm_id}"
    return response


@bp.get("/alarm")
@operation({"type": "array", "items": ALARM}, params=(
    query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
    query("marker", UUID, "Last id of the previous page"),
    query("q.field", {"type": "string", "enum": list(FILTERS)}),
    query("q.op", {"type": "string", "enum": ["eq"]}),
    query("q.value", {"type": "string"})))
def list_alarms():
    """Alarms, filtered with Aodh's ``q.field``/``q.op``/``q.value`` (equality only)."""
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
@operation(ALARM, path=_ID)
def show_alarm(alarm_id: str):
    """One alarm."""
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
@operation(ALARM, body=ALARM, path=_ID)
def update_alarm(alarm_id: str):
    """Aodh's PUT: the body is the whole alarm; omitted fields take their defaults."""
    return _replace(_load(alarm_id), jsonio.body())


@bp.patch("/alarm/<alarm_id>")
@operation(ALARM, body={"type": "object", "description": "Fields of the alarm to change"},
           path=_ID)
def patch_alarm(alarm_id: str):
    """A JSON merge of the body into the alarm as shown (a rule object is replaced whole)."""
    previous = _load(alarm_id)
    body = jsonio.body()
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object of fields to change")
    merged = {k: v for k, v in to_json(previous).items() if v is not None}
    if "type" in body and body["type"] != previous.type:
        merged.pop(f"{previous.type}_rule")
    merged.update(body)
    return _replace(previous, merged)


@bp.delete("/alarm/<alarm_id>")
@operation(status=204, path=_ID)
def delete_alarm(alarm_id: str):
    """Delete an alarm (its history is kept)."""
    alarm = _load(alarm_id)
    try:
        _alarms().delete(alarm.alarm_id, time.time())
    except NotFound:
        raise not_found(f"Alarm {alarm_id}") from None
    return "", 204


@bp.get("/alarm/<alarm_id>/history")
@operation({"type": "array", "items": AlarmEvent}, path=_ID, params=(
    query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),))
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
@operation(STATE, path=_ID)
def get_state(alarm_id: str):
    """An alarm's state."""
    return jsonify(_load(alarm_id).state)


@bp.put("/alarm/<alarm_id>/state")
@operation(STATE, body=STATE, path=_ID)
def set_state(alarm_id: str):
    """Body: a JSON string, one of the states; recorded as a state transition."""
    previous = _load(alarm_id)
    state = body_as(_STATE, where="state")
    body = {k: v for k, v in to_json(previous).items() if v is not None}
    body["state"] = state
    return jsonify(_replace(previous, body).get_json()["state"])
