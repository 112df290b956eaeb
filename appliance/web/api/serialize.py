"""Index rows -> Gnocchi's JSON shapes (resources, metrics, archive policies).

The ``Shown*`` models state those shapes for the OpenAPI document (and its fuzzer, which
checks every answer against them); the dicts are built by hand, on the read path.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from appliance.model import ArchivePolicy, Metric
from appliance.web.api.params import iso

Kind = Literal["gauge", "cumulative"]


class ShownItem(BaseModel):
    granularity: str
    points: int
    timespan: str


class ShownArchivePolicy(BaseModel):
    """An archive policy as Gnocchi shows it (durations as ``H:MM:SS``)."""

    name: str
    back_window: int
    aggregation_methods: list[str]
    definition: list[ShownItem]


class ShownResource(BaseModel):
    """A resource: fixed fields, ``metrics`` (name -> id), then its type's attributes."""

    model_config = ConfigDict(extra="allow")
    id: UUID
    type: str
    original_resource_id: str
    started_at: str
    ended_at: str | None
    revision_start: str
    revision_end: str | None
    creator: str | None
    user_id: str | None = None
    project_id: str | None = None
    metrics: dict[str, str]


class ShownMetric(BaseModel):
    id: UUID
    name: str | None
    unit: str | None
    resource_id: str | None
    creator: str | None
    archive_policy: ShownArchivePolicy
    archive_policy_name: str
    kind: Kind
    resource: ShownResource | None = None


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


#: The keys of :func:`resource` every resource has, whatever its type (Gnocchi's generic ones).
GENERIC_KEYS = ("id", "type", "original_resource_id", "started_at", "ended_at", "revision_start",
                "revision_end", "creator", "created_by_user_id", "created_by_project_id",
                "user_id", "project_id", "metrics")


def generic_rows(bodies: list[dict[str, Any]], details: bool) -> list[dict[str, Any]]:
    """Resources of mixed types as a generic listing or search shows them.

    Without ``details`` only the generic keys, as Gnocchi answers. With ``details`` every row
    carries the same keys (a type's attribute another row lacks is null): gnocchiclient builds
    its columns from the first row and indexes every row with them, so rows of mixed types
    with different keys would fail its ``resource list --details``.
    """
    if not details:
        return [{k: b[k] for k in GENERIC_KEYS} for b in bodies]
    extra = list(dict.fromkeys(k for b in bodies for k in b if k not in GENERIC_KEYS))
    return [{**b, **{k: b.get(k) for k in extra}} for b in bodies]


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
