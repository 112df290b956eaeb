"""SNMP targets beside the config file's: kept in the index, read by the pollster each cycle.

The config's targets are fixed for a process's life and read-only through the API; runtime
targets (found by discovery or posted to ``/v1/snmp/target``) are validated with the same
:class:`~appliance.config.SnmpTarget` model and survive restarts in the index.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr, ValidationError

from appliance.config import SnmpTarget
from appliance.index import Index
from appliance.index import snmp_targets as rows

if TYPE_CHECKING:
    from appliance.pollsters.snmp.discovery import Found

log = logging.getLogger(__name__)

SECRET_FIELDS = ("community", "auth_key", "priv_key")


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


def load(index: Index) -> list[tuple[SnmpTarget, rows.RuntimeTarget]]:
    """Valid runtime targets; a row that no longer validates is logged and skipped."""
    out = []
    for row in rows.all_targets(index):
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


def record_found(index: Index, found: list[Found], configured: list[SnmpTarget]) -> list[str]:
    """Add what a sweep found as runtime targets; hosts already configured are left alone.
    Returns the names added (a target seen again only has its detail refreshed)."""
    taken = {(t.host, t.port) for t in configured} | {t.name for t in configured}
    added, now = [], time.time()
    for item in found:
        target = item.target
        if (target.host, target.port) in taken or target.name in taken:
            continue
        existing = rows.get(index, target.name)
        if existing is not None and existing.origin != "discovery":
            continue  # posted through the API: the admin's definition wins
        detail = {"sys_object_id": item.sys_object_id, "sys_descr": item.sys_descr,
                  "sys_name": item.sys_name, "seen_at": now}
        if rows.put(index, target.name, to_definition(target), "discovery", detail, now):
            added.append(target.name)
    return added


class RuntimeTargets:
    """What the pollster asks once per cycle; the index is opened when it first exists."""

    def __init__(self, index_path: Path):
        self._path = index_path
        self._index: Index | None = None

    def current(self) -> list[SnmpTarget]:
        if self._index is None:
            if not self._path.exists():
                return []
            self._index = Index(self._path)
        return [target for target, _ in load(self._index)]

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
