"""Named metrics with their resource, for the Prometheus query API's series selection.

A Prometheus name (``disk_device_read_bytes``) does not map back to one meter name
(``disk.device.read.bytes``, ``disk-device.read_bytes``, ...), but every character a meter
name loses became ``_``, which SQL's LIKE reads as "any one character": LIKE narrows the
scan and the caller keeps the rows whose exposed name really is the one asked for.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from appliance.index import Index

_COLUMNS = (
    "SELECT m.id, m.name, m.unit, m.kind, m.archive_policy_name, m.resource_id,"
    " m.created_at, m.creator,"
    " r.type, r.attributes FROM metrics m LEFT JOIN resources r ON r.id = m.resource_id"
    " WHERE m.name IS NOT NULL"
)


def named_metrics(index: Index, like: Sequence[str] | None = None) -> list[sqlite3.Row]:
    """Every named metric (or those whose name is LIKE one of ``like``), by name then id."""
    if like is None:
        return index.query(_COLUMNS + " ORDER BY m.name, m.id")
    if not like:
        return []
    where = " OR ".join("m.name LIKE ?" for _ in like)
    return index.query(f"{_COLUMNS} AND ({where}) ORDER BY m.name, m.id", list(like))
