"""``/v1/snmp/target``: the SNMP targets, configured and added at run time.

Configured targets (the config file's) are listed and read-only; runtime targets (found by
discovery or posted here by an admin) live in the index and are polled from the SNMP
agent's next cycle on, without a restart. Communities and keys are accepted on POST and
never returned: not even masked.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, jsonify

from appliance.config import SnmpTarget
from appliance.index import snmp_targets as rows
from appliance.index.snmp_targets import listing, to_definition
from appliance.pollsters.snmp.definitions import DefinitionError, Group, candidates_for
from appliance.web.api.errors import ApiError, bad_param, not_found
from appliance.web.api.openapi import operation
from appliance.web.api.params import body_as
from appliance.web.context import get_settings, get_store

bp = Blueprint("snmp_targets", __name__)


def _groups() -> dict[str, Group]:
    """The definition groups (to refuse a target naming an unknown one), loaded once."""
    from appliance.pollsters import snmp

    return snmp.groups(get_settings().pollsters.snmp)


def _configured() -> dict[str, SnmpTarget]:
    return {t.name: t for t in get_settings().pollsters.snmp.targets}


def _all() -> dict[str, dict[str, Any]]:
    targets = listing(get_settings().pollsters.snmp.targets, get_store().index)
    return {t["name"]: t for t in targets}


#: A target as shown: its secrets are never part of it, not even masked.
_SHOWN = {
    "type": "object",
    "required": ["name", "host"],
    "properties": {
        "name": {"type": "string"},
        "host": {"type": "string"},
        "port": {"type": "integer"},
        "version": {"type": "string", "enum": ["2c", "3"]},
        "user": {"type": ["string", "null"]},
        "groups": {"type": "array", "items": {"type": "string"}},
        "origin": {"type": "string", "enum": ["config", "discovery", "api"]},
        "read_only": {"type": "boolean"},
    },
    "additionalProperties": True,
}


@bp.get("/snmp/target")
@operation({"type": "array", "items": _SHOWN})
def list_targets():
    """List SNMP targets, configured and runtime (secrets never returned)."""
    return jsonify(listing(get_settings().pollsters.snmp.targets, get_store().index))


@bp.get("/snmp/target/<name>")
@operation(_SHOWN)
def get_target(name: str):
    """One SNMP target."""
    target = _all().get(name)
    if target is None:
        raise not_found(f"SNMP target {name}")
    return jsonify(target)


@bp.post("/snmp/target")
@operation(_SHOWN, status=201, body=SnmpTarget)
def create_target():
    """Add a runtime SNMP target (admin); it is polled from the agent's next cycle on."""
    target = body_as(SnmpTarget)
    try:
        candidates_for(_groups(), target.groups)
    except DefinitionError as exc:
        raise bad_param("groups", str(exc)) from None
    index = get_store().index
    if target.name in _configured() or rows.get(index, target.name) is not None:
        raise ApiError(409, f"SNMP target {target.name} already exists")
    now = time.time()
    rows.put(index, target.name, to_definition(target), "api", {}, now)
    response = jsonify(_all()[target.name])
    response.status_code = 201
    return response


@bp.delete("/snmp/target/<name>")
@operation(status=204)
def delete_target(name: str):
    """Remove a runtime target (configured ones are read-only: change the config file)."""
    if name in _configured():
        raise ApiError(403, f"SNMP target {name} is in the config file: change it there")
    if not rows.delete(get_store().index, name):
        raise not_found(f"SNMP target {name}")
    return "", 204
