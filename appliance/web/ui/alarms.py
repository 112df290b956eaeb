"""Alarms as the status page shows them, read from the index only if they exist there.

The alarm evaluator brings its tables (``alarms``, ``alarm_history``) through an index
migration; until that has run the page says "no alarms configured" instead of failing.
Only the page's own reading is here: definitions and transitions belong to the evaluator.
"""

from __future__ import annotations

import json
from typing import Any

from appliance.index import Index

#: Alarm state -> the page's status colour (Aodh's three states).
STATE_TONE = {"ok": "ok", "alarm": "bad", "insufficient data": "warn"}
HISTORY_LIMIT = 100


def available(index: Index) -> bool:
    return index.alarm_repo.stored()


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _alarm(raw: dict[str, Any]) -> dict[str, Any]:
    """One alarm row; the user's definition (rule, severity, description) is a JSON column."""
    definition = _json(raw.get("definition")) or {}
    if not isinstance(definition, dict):
        definition = {}
    state = str(raw.get("state") or "insufficient data")
    return {
        "id": raw.get("id"),
        "name": raw.get("name") or raw.get("id"),
        "type": raw.get("type") or definition.get("type"),
        "state": state,
        "tone": STATE_TONE.get(state, "warn"),
        "since": raw.get("state_timestamp"),
        "reason": raw.get("state_reason"),
        "enabled": bool(raw.get("enabled", definition.get("enabled", True))),
        "severity": definition.get("severity"),
        "summary": definition.get("description") or "",
        "rule": definition.get("rule"),
    }


def listing(index: Index) -> list[dict[str, Any]]:
    """Every alarm, firing ones first, then by name."""
    if not available(index):
        return []
    rows = [_alarm(r) for r in index.alarm_repo.every()]
    return sorted(rows, key=lambda r: (r["state"] != "alarm", str(r["name"])))


def history(index: Index, limit: int = HISTORY_LIMIT) -> list[dict[str, Any]]:
    """The newest events first: creations, rule changes, state transitions, deletions."""
    if not available(index):
        return []
    names = {r["id"]: r["name"] for r in index.alarm_repo.every()}
    out = []
    for raw in index.alarm_repo.recent_history(limit):
        detail = _json(raw.get("detail"))
        detail = detail if isinstance(detail, dict) else {}
        state = detail.get("state")
        out.append({
            "timestamp": raw.get("timestamp"),
            "alarm": names.get(raw.get("alarm_id")) or detail.get("name") or raw.get("alarm_id"),
            "type": raw.get("type"),
            "state": state,
            "tone": STATE_TONE.get(str(state), "idle"),
            "reason": detail.get("transition_reason") or "",
        })
    return out
