"""``/v1/snmp/target``: the SNMP targets, configured and added at run time.

Configured targets (the config file's) are listed and read-only; runtime targets (found by
discovery or posted here by an admin) live in the index and are polled from the SNMP
agent's next cycle on, without a restart. Communities and keys are accepted on POST and
never returned: not even masked.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, current_app, jsonify
from pydantic import ValidationError

from appliance.api.errors import ApiError, bad_param, not_found
from appliance.api.params import json_body
from appliance.config import SnmpTarget
from appliance.index import snmp_targets as rows
from appliance.index.snmp_targets import listing, to_definition
from appliance.pollsters.snmp.definitions import DefinitionError, Group, candidates_for
from appliance.webcontext import get_settings, get_store

bp = Blueprint("snmp_targets", __name__)


def _groups() -> dict[str, Group]:
    """The definition groups (to refuse a target naming an unknown one), loaded once."""
    groups = current_app.extensions.get("appliance.snmp.groups")
    if groups is None:
        from appliance.pollsters.snmp.definitions import load_groups
        from appliance.pollsters.snmp.mibnames import MibNames

        snmp = get_settings().pollsters.snmp
        groups = load_groups(snmp.definitions_dir, MibNames.load(snmp.mibs_dir))
        current_app.extensions["appliance.snmp.groups"] = groups
    return groups


def _configured() -> dict[str, SnmpTarget]:
    return {t.name: t for t in get_settings().pollsters.snmp.targets}


def _all() -> dict[str, dict[str, Any]]:
    targets = listing(get_settings().pollsters.snmp.targets, get_store().index)
    return {t["name"]: t for t in targets}


@bp.get("/snmp/target")
def list_targets():
    return jsonify(listing(get_settings().pollsters.snmp.targets, get_store().index))


@bp.get("/snmp/target/<name>")
def get_target(name: str):
    target = _all().get(name)
    if target is None:
        raise not_found(f"SNMP target {name}")
    return jsonify(target)


@bp.post("/snmp/target")
def create_target():
    data = json_body()
    if not isinstance(data, dict):
        raise ApiError(400, "The body must be a JSON object describing an SNMP target")
    try:
        target = SnmpTarget.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise bad_param(where, first["msg"].removeprefix("Value error, ")) from None
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
def delete_target(name: str):
    if name in _configured():
        raise ApiError(403, f"SNMP target {name} is in the config file: change it there")
    if not rows.delete(get_store().index, name):
        raise not_found(f"SNMP target {name}")
    return "", 204


_TARGET = {
    "type": "object",
    "required": ["name", "host"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]+$"},
        "host": {"type": "string"},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "version": {"type": "string", "enum": ["2c", "3"]},
        "community": {"type": "string", "writeOnly": True},
        "user": {"type": "string", "nullable": True},
        "auth_key": {"type": "string", "writeOnly": True},
        "priv_key": {"type": "string", "writeOnly": True},
        "groups": {"type": "array", "items": {"type": "string"}},
        "origin": {"type": "string", "enum": ["config", "discovery", "api"], "readOnly": True},
        "read_only": {"type": "boolean", "readOnly": True},
    },
    "additionalProperties": True,
}
# The document's pieces are spelled out here: appliance.api.openapi imports this package.
_REF = {"$ref": "#/components/schemas/SnmpTarget"}
_JSON = "application/json"
_ERRORS = {
    str(code): {"description": text, "content": {_JSON: {"schema": {
        "$ref": "#/components/schemas/Error"}}}}
    for code, text in [(400, "Invalid body (the description names the field)"),
                       (401, "No valid token"), (403, "Not an admin, or a configured target"),
                       (404, "No such target"), (409, "The name exists"),
                       (415, "Body is not JSON")]
}


def _ok(schema: dict[str, Any], code: int = 200) -> dict[str, Any]:
    return {str(code): {"description": "OK", "content": {_JSON: {"schema": schema}}}, **_ERRORS}


OPENAPI_SCHEMAS = {"SnmpTarget": _TARGET}
OPENAPI_PATHS = {
    "/v1/snmp/target": {
        "get": {"summary": "List SNMP targets (secrets never returned)", "tags": ["snmp"],
                "responses": _ok({"type": "array", "items": _REF})},
        "post": {"summary": "Add a runtime SNMP target (admin)", "tags": ["snmp"],
                 "requestBody": {"required": True, "content": {_JSON: {"schema": _REF}}},
                 "responses": _ok(_REF, 201)},
    },
    "/v1/snmp/target/{name}": {
        "parameters": [{"name": "name", "in": "path", "required": True,
                        "schema": {"type": "string"}}],
        "get": {"summary": "One SNMP target", "tags": ["snmp"], "responses": _ok(_REF)},
        "delete": {"summary": "Remove a runtime target (configured ones are read-only)",
                   "tags": ["snmp"], "responses": {"204": {"description": "Removed"}, **_ERRORS}},
    },
}
