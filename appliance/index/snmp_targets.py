"""SNMP targets added at run time (migration 5): found by discovery or posted to the API.

Rows hold the target's config mapping (secrets included, like the config file) and a
secret-free ``detail`` (what discovery saw). The SNMP pollster reads them every cycle, so a
target added or removed here is polled or dropped without a restart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from appliance.index import Index


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
