"""Alarms and their history in the index's SQLite file (tables from migration 2).

The API writes definitions; the evaluator writes state transitions, all of one round in one
transaction. History rows follow Aodh's shape (event_id, alarm_id, type, detail as a JSON
string, timestamp) and are kept after the alarm is deleted.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from appliance.alarms.model import Alarm, definition, from_definition, to_json
from appliance.index import Conflict, Index, NotFound

CREATION, RULE_CHANGE, STATE_TRANSITION, DELETION = (
    "creation", "rule change", "state transition", "deletion",
)


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change decided by the evaluator (or set through the API)."""

    alarm_id: str
    severity: str
    previous: str
    state: str
    reason: str
    reason_data: dict[str, Any]
    timestamp: float


def _alarm(row: sqlite3.Row) -> Alarm:
    return from_definition(
        row["id"], json.loads(row["definition"]), state=row["state"],
        state_reason=row["state_reason"], state_timestamp=row["state_timestamp"],
        timestamp=row["timestamp"],
    )


class AlarmStore:
    """CRUD and history for alarms over one :class:`~appliance.index.Index`."""

    def __init__(self, index: Index):
        self.index = index

    def _history(self, conn: sqlite3.Connection, alarm: Alarm, type_: str,
                 detail: dict[str, Any], timestamp: float) -> None:
        conn.execute(
            "INSERT INTO alarm_history(event_id, alarm_id, type, detail, severity, timestamp)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (str(uuid.uuid4()), alarm.alarm_id, type_, json.dumps(detail), alarm.severity,
             timestamp),
        )

    def _write(self, conn: sqlite3.Connection, alarm: Alarm, insert: bool) -> None:
        values = (alarm.name, alarm.type, int(alarm.enabled), json.dumps(definition(alarm)),
                  alarm.state, alarm.state_reason, alarm.state_timestamp, alarm.timestamp,
                  alarm.alarm_id)
        try:
            if insert:
                conn.execute(
                    "INSERT INTO alarms(name, type, enabled, definition, state, state_reason,"
                    " state_timestamp, timestamp, id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    values,
                )
            else:
                conn.execute(
                    "UPDATE alarms SET name = ?, type = ?, enabled = ?, definition = ?,"
                    " state = ?, state_reason = ?, state_timestamp = ?, timestamp = ?"
                    " WHERE id = ?",
                    values,
                )
        except sqlite3.IntegrityError:
            raise Conflict(f"an alarm named {alarm.name!r} already exists") from None

    def create(self, alarm: Alarm) -> Alarm:
        with self.index.transaction() as conn:
            self._write(conn, alarm, insert=True)
            self._history(conn, alarm, CREATION, to_json(alarm), alarm.timestamp)
        return alarm

    def update(self, alarm: Alarm) -> Alarm:
        """Replace an alarm; history gets the changed fields, and the state change if any."""
        with self.index.transaction() as conn:
            old = self._get(conn, alarm.alarm_id)
            self._write(conn, alarm, insert=False)
            before, after = definition(old), definition(alarm)
            changed = {k: v for k, v in after.items() if before.get(k) != v}
            if changed:
                self._history(conn, alarm, RULE_CHANGE, changed, alarm.timestamp)
            if old.state != alarm.state:
                self._history(conn, alarm, STATE_TRANSITION,
                              {"state": alarm.state, "transition_reason": alarm.state_reason},
                              alarm.state_timestamp)
        return alarm

    def delete(self, alarm_id: str, now: float) -> None:
        with self.index.transaction() as conn:
            alarm = self._get(conn, alarm_id)
            conn.execute("DELETE FROM alarms WHERE id = ?", (alarm_id,))
            self._history(conn, alarm, DELETION, to_json(alarm), now)

    @staticmethod
    def _get(conn: sqlite3.Connection, alarm_id: str) -> Alarm:
        row = conn.execute("SELECT * FROM alarms WHERE id = ?", (alarm_id,)).fetchone()
        if row is None:
            raise NotFound(f"alarm {alarm_id}")
        return _alarm(row)

    def get(self, alarm_id: str) -> Alarm:
        rows = self.index.query("SELECT * FROM alarms WHERE id = ?", (alarm_id,))
        if not rows:
            raise NotFound(f"alarm {alarm_id}")
        return _alarm(rows[0])

    def list(self, filters: dict[str, Any] | None = None, limit: int | None = None,
             marker: str | None = None) -> list[Alarm]:
        """Alarms ordered by id; ``filters`` on name, type, state, enabled, severity."""
        severity = "json_extract(definition, '$.severity')"
        equal = {severity if k == "severity" else k: v for k, v in (filters or {}).items()}
        return [_alarm(r) for r in self.index.page("alarms", equal, limit, marker)]

    def enabled(self) -> list[Alarm]:
        return [_alarm(r) for r in self.index.query("SELECT * FROM alarms WHERE enabled = 1")]

    def record(self, transitions: Iterable[Transition]) -> int:
        """Apply state transitions (one transaction); skip alarms deleted meanwhile.

        Returns how many were applied.
        """
        applied = 0
        with self.index.transaction() as conn:
            for t in transitions:
                if not conn.execute(
                    "UPDATE alarms SET state = ?, state_reason = ?, state_timestamp = ?"
                    " WHERE id = ?",
                    (t.state, t.reason, t.timestamp, t.alarm_id),
                ).rowcount:
                    continue
                conn.execute(
                    "INSERT INTO alarm_history(event_id, alarm_id, type, detail, severity,"
                    " timestamp) VALUES (?, ?, ?, ?, ?, ?)",
                    (str(uuid.uuid4()), t.alarm_id, STATE_TRANSITION,
                     json.dumps({"state": t.state, "transition_reason": t.reason,
                                 "reason_data": t.reason_data}),
                     t.severity, t.timestamp),
                )
                applied += 1
        return applied

    def history(self, alarm_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Events of one alarm, newest first (Aodh's order)."""
        sql = ("SELECT * FROM alarm_history WHERE alarm_id = ?"
               " ORDER BY timestamp DESC, rowid DESC")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [dict(r) for r in self.index.query(sql, (alarm_id,))]
