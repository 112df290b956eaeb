"""SNMP targets added at run time (migration 5): found by discovery or posted to the API.

Rows hold the target's config mapping (secrets included, like the config file) and a
secret-free ``detail`` (what discovery saw). They are validated with the same
:class:`~appliance.config.SnmpTarget` model as the config's targets. The SNMP agent reads
them every cycle, so a target added or removed here is polled or dropped without a
restart; the config's own targets are fixed for a process's life and win a name clash.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr, ValidationError

from appliance.config import SnmpTarget
from appliance.index import Index

log = logging.getLogger(__name__)

SECRET_FIELDS = ("community", "auth_key", "priv_key")


@dataclass(frozen=True, slots=True)
class RuntimeTarget:
    name: str
    definition: dict[str, Any]
    origin: str  # "discovery" or "api"
    detail: dict[str, Any]
    created_at: float
    updated_at: float


def _target(row: Any) -> RuntimeTarget:
    return RuntimeTarget(row["name"], json.loads(row["definition"]), row["origin"],
                         json.loads(row["detail"]), row["created_at"], row["updated_at"])


def all_targets(index: Index) -> list[RuntimeTarget]:
    return [_target(r) for r in index.query("SELECT * FROM snmp_targets ORDER BY name")]


def get(index: Index, name: str) -> RuntimeTarget | None:
    rows = index.query("SELECT * FROM snmp_targets WHERE name = ?", (name,))
    return _target(rows[0]) if rows else None


def put(index: Index, name: str, definition: dict[str, Any], origin: str,
        detail: dict[str, Any], now: float) -> bool:
    """Insert or replace one target; True when it is new."""
    with index.transaction() as conn:
        new = conn.execute("SELECT 1 FROM snmp_targets WHERE name = ?", (name,)).fetchone() is None
        conn.execute(
            "INSERT INTO snmp_targets(name, definition, origin, detail, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
            " definition = excluded.definition, origin = excluded.origin,"
            " detail = excluded.detail, updated_at = excluded.updated_at",
            (name, json.dumps(definition, sort_keys=True), origin,
             json.dumps(detail, sort_keys=True), now, now),
        )
    return new


def delete(index: Index, name: str) -> bool:
    with index.transaction() as conn:
        return conn.execute("DELETE FROM snmp_targets WHERE name = ?", (name,)).rowcount > 0


def to_definition(target: SnmpTarget) -> dict[str, Any]:
    """The target as stored: every field, secrets revealed (the index is as private as the
    config file)."""
    out = target.model_dump(mode="json")
    for name in SECRET_FIELDS:
        value = getattr(target, name)
        out[name] = value.get_secret_value() if isinstance(value, SecretStr) else None
    return out


def public(target: SnmpTarget) -> dict[str, Any]:
    """The target as shown: secrets left out entirely, not even masked."""
    return target.model_dump(mode="json", exclude=set(SECRET_FIELDS))


def load(index: Index) -> list[tuple[SnmpTarget, RuntimeTarget]]:
    """Valid runtime targets; a row that no longer validates is logged and skipped."""
    out = []
    for row in all_targets(index):
        try:
            out.append((SnmpTarget.model_validate(row.definition), row))
        except ValidationError as exc:
            log.warning("runtime snmp target %s is invalid, skipped: %s", row.name,
                        exc.errors()[0]["msg"])
    return out


def listing(configured: list[SnmpTarget], index: Index) -> list[dict[str, Any]]:
    """Every target as the API and the status page show it, by name: configured ones
    (read-only) first in a name clash, then runtime ones with what discovery saw."""
    out = {t.name: public(t) | {"origin": "config", "read_only": True} for t in configured}
    for target, row in load(index):
        out.setdefault(target.name, public(target) | {
            "origin": row.origin, "read_only": False, "detail": row.detail,
            "created_at": row.created_at, "updated_at": row.updated_at,
        })
    return sorted(out.values(), key=lambda t: t["name"])


def record_found(
    index: Index, found: list[tuple[SnmpTarget, dict[str, Any]]], configured: list[SnmpTarget]
) -> list[str]:
    """Add what a sweep found (each target with what it saw of the device) as runtime
    targets; hosts already configured, and targets posted to the API, are left alone.
    Returns the names added (a target seen again only has its detail refreshed)."""
    taken = {(t.host, t.port) for t in configured} | {t.name for t in configured}
    added, now = [], time.time()
    for target, seen in found:
        if (target.host, target.port) in taken or target.name in taken:
            continue
        existing = get(index, target.name)
        if existing is not None and existing.origin != "discovery":
            continue  # posted through the API: the admin's definition wins
        detail = seen | {"seen_at": now}
        if put(index, target.name, to_definition(target), "discovery", detail, now):
            added.append(target.name)
    return added
