"""The appliance's own health: the latest outcome of each (source, target) poll, and
counters that every process adds to (read by ``/metrics`` and the status page)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from appliance.index.database import Database
from appliance.model import TargetReport


class Health:
    """The ``source_status`` and ``counters`` tables, plus the index's sizes."""

    def __init__(self, db: Database):
        self.db = db

    def record_reports(self, reports: Iterable[TargetReport]) -> None:
        """Keep the latest outcome of each (source, target) poll for the API and status page."""
        rows = [
            (
                r.source, r.target, r.started_at, r.started_at if r.ok else None, r.duration,
                r.samples, r.error, int(not r.ok), json.dumps(r.detail, default=str),
            )
            for r in reports
        ]
        if not rows:
            return
        # Counting polls and errors in the upsert itself: sqlite-utils' upsert replaces.
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT INTO source_status(source, target, last_attempt, last_success, duration,"
                " samples, last_error, polls, errors, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)"
                " ON CONFLICT(source, target) DO UPDATE SET"
                " last_attempt = excluded.last_attempt,"
                " last_success = COALESCE(excluded.last_success, last_success),"
                " duration = excluded.duration, samples = excluded.samples,"
                " last_error = excluded.last_error, polls = polls + 1,"
                " errors = errors + excluded.errors, detail = excluded.detail",
                rows,
            )

    def source_status(self) -> list[dict[str, Any]]:
        return [
            {**r, "detail": json.loads(r["detail"])}
            for r in self.db.rows("source_status", order_by="source, target")
        ]

    def add_counters(self, counts: dict[str, int]) -> None:
        counts = {k: v for k, v in counts.items() if v}
        if not counts:
            return
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT INTO counters(name, value) VALUES (?, ?)"
                " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                list(counts.items()),
            )

    def counters(self) -> dict[str, int]:
        return {r["name"]: r["value"] for r in self.db.rows("counters")}

    def counts(self) -> dict[str, int]:
        with self.db.lock:
            return {name: self.db.table(name).count for name in ("resources", "metrics")}
