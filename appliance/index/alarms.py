"""Alarm rows and their history rows (tables from migration 2), as plain dicts.

What an alarm *is* (its model, what history a change records) is :mod:`appliance.alarms`;
this module only stores it. A change and its history rows are written in one transaction.
History rows follow Aodh's shape (event_id, alarm_id, type, detail as a JSON string,
severity, timestamp) and outlive the alarm they describe.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from appliance.index.database import Conflict, Database, NotFound

#: A history entry: ``(type, detail as JSON, severity, timestamp)``.
Event = tuple[str, str, str, float]
#: What :meth:`Alarms.change` asks of its caller: the old row -> the new row and the
#: history entries the change records.
Change = Callable[[dict[str, Any]], tuple[dict[str, Any], list[Event]]]


@dataclass(frozen=True, slots=True)
class StateChange:
    """One state transition to store: the alarm's new state columns and its history entry."""

    alarm_id: str
    state: str
    reason: str
    timestamp: float
    severity: str
    history_type: str
    detail: str  # JSON


class Alarms:
    """The ``alarms`` and ``alarm_history`` tables."""

    def __init__(self, db: Database):
        self.db = db

    @staticmethod
    def _history(conn: sqlite3.Connection, alarm_id: str, event: Event) -> None:
        type_, detail, severity, timestamp = event
        conn.execute(
            "INSERT INTO alarm_history(event_id, alarm_id, type, detail, severity, timestamp)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (str(uuid.uuid4()), alarm_id, type_, detail, severity, timestamp),
        )

    def _write(self, row: dict[str, Any], insert: bool) -> None:
        table = self.db.table("alarms")
        try:
            if insert:
                table.insert(row)
            else:
                table.update(row["id"], {k: v for k, v in row.items() if k != "id"})
        except sqlite3.IntegrityError:
            raise Conflict(f"an alarm named {row['name']!r} already exists") from None

    def create(self, row: dict[str, Any], event: Event) -> None:
        """Insert an alarm row (a name in use is a Conflict) with its creation event."""
        with self.db.transaction() as conn:
            self._write(row, insert=True)
            self._history(conn, row["id"], event)

    def change(self, alarm_id: str, change: Change) -> None:
        """Replace an alarm's row by ``change(old row)``, with the history it returns."""
        with self.db.transaction() as conn:
            row, events = change(self._get(conn, alarm_id))
            self._write(row, insert=False)
            for event in events:
                self._history(conn, alarm_id, event)

    def delete(self, alarm_id: str, event_of: Callable[[dict[str, Any]], Event]) -> None:
        """Delete an alarm; ``event_of(old row)`` gives the deletion event to record."""
        with self.db.transaction() as conn:
            old = self._get(conn, alarm_id)
            conn.execute("DELETE FROM alarms WHERE id = ?", (alarm_id,))
            self._history(conn, alarm_id, event_of(old))

    @staticmethod
    def _get(conn: sqlite3.Connection, alarm_id: str) -> dict[str, Any]:
        row = conn.execute("SELECT * FROM alarms WHERE id = ?", (alarm_id,)).fetchone()
        if row is None:
            raise NotFound(f"alarm {alarm_id}")
        return dict(row)

    def get(self, alarm_id: str) -> dict[str, Any]:
        rows = self.db.query("SELECT * FROM alarms WHERE id = ?", (alarm_id,))
        if not rows:
            raise NotFound(f"alarm {alarm_id}")
        return dict(rows[0])

    def listing(self, filters: dict[str, Any] | None = None, limit: int | None = None,
                marker: str | None = None) -> list[sqlite3.Row]:
        """Alarm rows ordered by id; ``filters`` on name, type, state, enabled, severity."""
        severity = "json_extract(definition, '$.severity')"
        equal = {severity if k == "severity" else k: v for k, v in (filters or {}).items()}
        return self.db.page("alarms", equal, limit, marker)

    def enabled(self) -> list[sqlite3.Row]:
        return self.db.query("SELECT * FROM alarms WHERE enabled = 1")

    def stored(self) -> bool:
        """Whether the alarm tables exist (migration 2 has run on this file)."""
        with self.db.lock:
            return self.db.table("alarms").exists() and self.db.table("alarm_history").exists()

    def every(self) -> list[dict[str, Any]]:
        return self.db.rows("alarms")

    def record(self, changes: Iterable[StateChange]) -> int:
        """Apply state transitions (one transaction); skip alarms deleted meanwhile.

        Returns how many were applied.
        """
        applied = 0
        with self.db.transaction() as conn:
            for c in changes:
                if not conn.execute(
                    "UPDATE alarms SET state = ?, state_reason = ?, state_timestamp = ?"
                    " WHERE id = ?",
                    (c.state, c.reason, c.timestamp, c.alarm_id),
                ).rowcount:
                    continue
                self._history(conn, c.alarm_id,
                              (c.history_type, c.detail, c.severity, c.timestamp))
                applied += 1
        return applied

    def history(self, alarm_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Events of one alarm, newest first (Aodh's order)."""
        return self.db.rows("alarm_history", "alarm_id = ?", [alarm_id],
                            order_by="timestamp DESC, rowid DESC", limit=limit)

    def recent_history(self, limit: int) -> list[dict[str, Any]]:
        """The newest events of every alarm, deleted ones included."""
        return self.db.rows("alarm_history", order_by="timestamp DESC, rowid DESC",
                            limit=limit)
