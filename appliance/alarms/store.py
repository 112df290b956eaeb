"""Alarms and their history: the model's side of what the index stores.

The API writes definitions; the evaluator writes state transitions, all of one round in one
transaction. What a change records in the history (Aodh's event types and details) is
decided here; the rows are kept by :class:`appliance.index.alarms.Alarms`, and the history
is kept after the alarm is deleted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from appliance.alarms.model import Alarm, definition, from_definition, to_json
from appliance.index import Index
from appliance.index.alarms import Event, StateChange

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


def _alarm(row: Any) -> Alarm:
    return from_definition(
        row["id"], json.loads(row["definition"]), state=row["state"],
        state_reason=row["state_reason"], state_timestamp=row["state_timestamp"],
        timestamp=row["timestamp"],
    )


def _row(alarm: Alarm) -> dict[str, Any]:
    return {
        "id": alarm.alarm_id, "name": alarm.name, "type": alarm.type,
        "enabled": int(alarm.enabled), "definition": json.dumps(definition(alarm)),
        "state": alarm.state, "state_reason": alarm.state_reason,
        "state_timestamp": alarm.state_timestamp, "timestamp": alarm.timestamp,
    }


class AlarmStore:
    """CRUD and history for alarms over one :class:`~appliance.index.Index`."""

    def __init__(self, index: Index):
        self.rows = index.alarm_repo

    def create(self, alarm: Alarm) -> Alarm:
        self.rows.create(_row(alarm), (CREATION, json.dumps(to_json(alarm)), alarm.severity,
                                       alarm.timestamp))
        return alarm

    def update(self, alarm: Alarm) -> Alarm:
        """Replace an alarm; history gets the changed fields, and the state change if any."""

        def change(old_row: dict[str, Any]) -> tuple[dict[str, Any], list[Event]]:
            old = _alarm(old_row)
            before, after = definition(old), definition(alarm)
            changed = {k: v for k, v in after.items() if before.get(k) != v}
            events: list[Event] = []
            if changed:
                events.append((RULE_CHANGE, json.dumps(changed), alarm.severity,
                               alarm.timestamp))
            if old.state != alarm.state:
                detail = {"state": alarm.state, "transition_reason": alarm.state_reason}
                events.append((STATE_TRANSITION, json.dumps(detail), alarm.severity,
                               alarm.state_timestamp))
            return _row(alarm), events

        self.rows.change(alarm.alarm_id, change)
        return alarm

    def delete(self, alarm_id: str, now: float) -> None:
        def event(old_row: dict[str, Any]) -> Event:
            alarm = _alarm(old_row)
            return DELETION, json.dumps(to_json(alarm)), alarm.severity, now

        self.rows.delete(alarm_id, event)

    def get(self, alarm_id: str) -> Alarm:
        return _alarm(self.rows.get(alarm_id))

    def list(self, filters: dict[str, Any] | None = None, limit: int | None = None,
             marker: str | None = None) -> list[Alarm]:
        """Alarms ordered by id; ``filters`` on name, type, state, enabled, severity."""
        return [_alarm(r) for r in self.rows.listing(filters, limit, marker)]

    def enabled(self) -> list[Alarm]:
        return [_alarm(r) for r in self.rows.enabled()]

    def record(self, transitions: Iterable[Transition]) -> int:
        """Apply state transitions (one transaction); skip alarms deleted meanwhile.

        Returns how many were applied.
        """
        return self.rows.record(
            StateChange(
                t.alarm_id, t.state, t.reason, t.timestamp, t.severity, STATE_TRANSITION,
                json.dumps({"state": t.state, "transition_reason": t.reason,
                            "reason_data": t.reason_data}),
            )
            for t in transitions
        )

    def history(self, alarm_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Events of one alarm, newest first (Aodh's order)."""
        return self.rows.history(alarm_id, limit)
