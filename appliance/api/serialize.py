"""Index rows -> Gnocchi's JSON shapes (resources, metrics, archive policies)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from appliance.api.params import iso
from appliance.model import Metric
from appliance.storage.policy import ArchivePolicy


def resource(row: sqlite3.Row, metrics: dict[str, str]) -> dict[str, Any]:
    """A resource as Gnocchi shows it: fixed fields, ``metrics``, then the type's attributes."""
    out = {
        "id": row["id"],
        "type": row["type"],
        "original_resource_id": row["original_resource_id"],
        "started_at": iso(row["started_at"]),
        "ended_at": iso(row["ended_at"]),
        "revision_start": iso(row["revision_start"]),
        "revision_end": None,
        "creator": row["creator"],
        "created_by_user_id": row["creator"],
        "created_by_project_id": "",
        "user_id": row["user_id"],
        "project_id": row["project_id"],
        "metrics": metrics,
    }
    for key, value in json.loads(row["attributes"]).items():
        out.setdefault(key, value)
    return out


def revision(rev: dict[str, Any], metrics: dict[str, str]) -> dict[str, Any]:
    """One entry of a resource's history."""
    out = resource(rev, metrics)  # type: ignore[arg-type]
    out["revision_end"] = iso(rev.get("revision_end"))
    return out


def metric(m: Metric, policy: ArchivePolicy, resource_row: dict | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": m.id,
        "name": m.name,
        "unit": m.unit,
        "resource_id": m.resource_id,
        "creator": m.creator,
        "created_by_user_id": m.creator,
        "created_by_project_id": "",
        "archive_policy": policy.to_gnocchi(),
        "archive_policy_name": policy.name,
        "kind": m.kind.value,
    }
    if resource_row is not None:
        out["resource"] = resource_row
    return out
