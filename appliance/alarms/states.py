"""Aodh's state rules, as pure functions of a window of points.

Fewer points than ``evaluation_periods`` -> insufficient data; all breaching -> alarm; none
-> ok; a mix keeps the state, except that an alarm with insufficient data takes the latest
point's state. A decision is returned on a transition, or on every evaluation when the alarm
repeats its actions ("Remaining as ..."); otherwise nothing happens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from appliance.alarms.model import ALARM, OK, UNKNOWN

MIXED = "mixed"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one rule's window says: unequivocal (ok/alarm), mixed, or insufficient data."""

    evidence: str  # OK, ALARM, UNKNOWN or MIXED
    values: tuple[float, ...]
    breaching: int
    evaluation_periods: int
    noun: str = "threshold"  # what a point is inside or outside of, for the reason text
    last_breached: bool = False

    @property
    def leaf_state(self) -> str:
        """The state this rule alone points to (a mix follows its latest point)."""
        if self.evidence != MIXED:
            return self.evidence
        return self.trending

    @property
    def trending(self) -> str:
        return ALARM if self.last_breached else OK


@dataclass(frozen=True, slots=True)
class Decision:
    state: str
    reason: str
    reason_data: dict[str, Any]
    changed: bool


def judge(values: Sequence[float], evaluation_periods: int,
          breaches: Callable[[int, float], bool], noun: str = "threshold") -> Verdict:
    """Judge the last ``evaluation_periods`` values; ``breaches(i, value)`` tests one point."""
    window = tuple(values[-evaluation_periods:])
    if len(window) < evaluation_periods:
        return Verdict(UNKNOWN, window, 0, evaluation_periods, noun)
    offset = len(values) - len(window)
    compared = [breaches(offset + i, v) for i, v in enumerate(window)]
    count = sum(compared)
    evidence = ALARM if count == len(window) else OK if count == 0 else MIXED
    return Verdict(evidence, window, count, evaluation_periods, noun, compared[-1])


def decide(current: str, verdict: Verdict, repeat: bool) -> Decision | None:
    """The decision for a single-rule alarm in state ``current``, or None to do nothing."""
    most_recent = verdict.values[-1] if verdict.values else None
    if verdict.evidence == UNKNOWN:
        if current == UNKNOWN and not repeat:
            return None
        data = {"type": verdict.noun.split()[0], "disposition": "unknown",
                "count": len(verdict.values), "most_recent": most_recent}
        return Decision(UNKNOWN, f"{verdict.evaluation_periods} datapoints are unknown", data,
                        current != UNKNOWN)
    # A mix keeps a known state; from insufficient data it follows the latest point.
    state = current if verdict.evidence == MIXED and current != UNKNOWN else verdict.leaf_state
    changed = state != current
    if not changed and not repeat:
        return None
    if state == OK:
        disposition, count = "inside", len(verdict.values) - verdict.breaching
    else:
        disposition, count = "outside", verdict.breaching
    data = {"type": verdict.noun.split()[0], "disposition": disposition, "count": count,
            "most_recent": most_recent}
    verb = f"Transition to {state}" if changed else f"Remaining as {state}"
    reason = (f"{verb} due to {count} samples {disposition} {verdict.noun}, "
              f"most recent: {most_recent}")
    return Decision(state, reason, data, changed)


def combine(tree: dict[str, Any], leaf_states: list[str]) -> str:
    """A composite tree's state under three-valued logic, leaves consumed in document order.

    ``or`` alarms when any child alarms, ``and`` when all do; the result is ok only when the
    unknown children could not make it alarm (Aodh's rule), and otherwise insufficient data.
    """
    it = iter(leaf_states)

    def walk(node: dict[str, Any]) -> str:
        if "type" in node:
            return next(it)
        (op, children), = node.items()
        states = [walk(c) for c in children]
        if op == "or":
            if ALARM in states:
                return ALARM
            return UNKNOWN if UNKNOWN in states else OK
        if OK in states:
            return OK
        return UNKNOWN if UNKNOWN in states else ALARM

    return walk(tree)


def decide_composite(current: str, state: str, causes: list[str],
                     repeat: bool) -> Decision | None:
    """The decision for a composite alarm whose tree evaluates to ``state``."""
    changed = state != current
    if not changed and not repeat:
        return None
    verb = f"Transition to {state}" if changed else f"Remaining as {state}"
    reason = f"Composite rule alarm: {verb}, due to rules: {', '.join(causes) or 'none'}"
    return Decision(state, reason, {"type": "composite", "rules": causes}, changed)
