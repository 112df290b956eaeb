"""Events in the index (migration 4): what happened to a resource at an instant.

SNMP traps are written here by the trap receiver; the status page lists them, a resource's
page shows its own, and the alarm evaluator's ``event`` rules count them. Event types are
dotted names (``snmp.trap.linkDown``) matched with shell globs, as Aodh's event alarms do.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from appliance.index import Index
from appliance.model import Event

__all__ = ["Event", "count", "prune", "recent", "record"]

_COLUMNS = "timestamp, event_type, resource_id, source, traits"


def record(index: Index, events: Iterable[Event]) -> int:
    """Append events in one transaction; returns how many."""
    rows = [
        (e.timestamp, e.event_type, e.resource_id, e.source, json.dumps(e.traits, sort_keys=True))
        for e in events
    ]
    with index.transaction() as conn:
        conn.executemany(
            "INSERT INTO events(timestamp, event_type, resource_id, source, traits)"
            " VALUES (?, ?, ?, ?, ?)",
            rows,
        )
    return len(rows)


def prune(index: Index, before: float) -> int:
    """Forget events older than ``before`` (a trap storm must not grow the index forever)."""
    with index.transaction() as conn:
        return conn.execute("DELETE FROM events WHERE timestamp < ?", (before,)).rowcount


def recent(index: Index, limit: int = 50, resource_id: str | None = None) -> list[Event]:
    """The latest events, newest first (of one resource, or of all)."""
    where, params = ("WHERE resource_id = ?", [resource_id]) if resource_id else ("", [])
    rows = index.query(
        f"SELECT {_COLUMNS} FROM events {where} ORDER BY id DESC LIMIT ?", [*params, limit]
    )
    return [_event(r) for r in rows]


def count(
    index: Index, event_type: str, since: float, resource_id: str | None = None
) -> tuple[int, Event | None]:
    """How many events whose type matches the shell glob ``event_type`` (SQLite's GLOB has
    the same syntax) happened after ``since``, of ``resource_id`` if given, and the latest."""
    where = "WHERE timestamp > ? AND event_type GLOB ?"
    params: list[Any] = [since, event_type]
    if resource_id:
        where += " AND resource_id = ?"
        params.append(resource_id)
    (total,) = index.query(f"SELECT COUNT(*) FROM events {where}", params)[0]
    if not total:
        return 0, None
    row = index.query(f"SELECT {_COLUMNS} FROM events {where} ORDER BY id DESC LIMIT 1", params)
    return total, _event(row[0])


def _event(row: Any) -> Event:
    return Event(row["timestamp"], row["event_type"], row["resource_id"], row["source"],
                 json.loads(row["traits"]))
