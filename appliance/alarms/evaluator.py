"""One evaluation round: every enabled alarm inside its time constraints, at one ``now``.

The round reads through one :class:`~appliance.alarms.series.RoundReader` (each metric once),
decides each alarm's state with :mod:`appliance.alarms.states`, writes all transitions in one
transaction, and only then hands the notifications to the :class:`Notifier`, which queues
them; nothing in a round waits for a webhook. Tests and the benchmark call ``run_round`` with
an injected ``now``; the supervised process calls it on a timer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from appliance.alarms.actions import Notifier
from appliance.alarms.model import ALARM, COMPOSITE, EVENT, OK, UNKNOWN, Alarm, rule_summary
from appliance.alarms.rules import COMPARATORS
from appliance.alarms.series import RoundReader, RuleError
from appliance.alarms.states import Decision, Verdict, combine, decide, decide_composite, judge
from appliance.alarms.store import AlarmStore, Transition
from appliance.alarms.timeconstraints import within
from appliance.index import events
from appliance.store import Store

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RoundReport:
    """What a round did, for the process's log and the benchmark."""

    alarms: int = 0
    evaluated: int = 0
    outside_time_constraints: int = 0
    transitions: int = 0
    notifications: int = 0
    errors: int = 0
    reads: int = 0
    seconds: float = 0.0


def verdict(type_: str, rule: dict[str, Any], reader: RoundReader) -> Verdict:
    """One (non-composite) rule's verdict over its window; a missing metric is no data."""
    if type_ == EVENT:
        count, _ = events.count(
            reader.index, rule["event_type"], reader.now - rule["window"], rule["resource_id"]
        )
        return Verdict(ALARM if count else OK, (float(count),), int(bool(count)), 1, "events")
    periods = rule["evaluation_periods"]
    try:
        if type_ == "rrd_forecast":
            band = reader.band(rule)
            floor, k = rule["min_deviation"], rule["deviations"]
            return judge(
                band.values, periods,
                lambda i, v: abs(v - band.predicted[i]) > max(k * band.sigma[i], floor),
                noun="forecast band",
            )
        compare, limit = COMPARATORS[rule["comparison_operator"]], rule["threshold"]
        return judge(reader.values(type_, rule), periods, lambda _i, v: compare(v, limit))
    except RuleError as exc:
        log.debug("rule has no data: %s", exc)
        return Verdict(UNKNOWN, (), 0, periods)


def event_decision(alarm: Alarm, reader: RoundReader) -> Decision | None:
    """An event alarm's decision: alarm while matching events are in the window."""
    rule = alarm.rule
    count, latest = events.count(
        reader.index, rule["event_type"], reader.now - rule["window"], rule["resource_id"]
    )
    state = ALARM if count else OK
    changed = state != alarm.state
    if not changed and not alarm.repeat_actions:
        return None
    verb = f"Transition to {state}" if changed else f"Remaining as {state}"
    reason = f"{verb} due to {count} {rule['event_type']} event(s) in the last {rule['window']}s"
    data: dict[str, Any] = {"type": EVENT, "count": count}
    if latest is not None:
        data["event"] = {"event_type": latest.event_type, "resource_id": latest.resource_id,
                         "timestamp": latest.timestamp, "traits": latest.traits}
    return Decision(state, reason, data, changed)


def evaluate(alarm: Alarm, reader: RoundReader) -> Decision | None:
    """The alarm's decision this round, or None when nothing is to be done."""
    if alarm.type == EVENT:
        return event_decision(alarm, reader)
    if alarm.type != COMPOSITE:
        return decide(alarm.state, verdict(alarm.type, alarm.rule, reader), alarm.repeat_actions)
    leaves = alarm.leaves()
    states = [verdict(t, r, reader).leaf_state for t, r in leaves]
    causes = [f"{rule_summary(t, r)} is {s}" for (t, r), s in zip(leaves, states, strict=True)]
    return decide_composite(alarm.state, combine(alarm.rule, states), causes,
                            alarm.repeat_actions)


class Evaluator:
    def __init__(self, store: Store, notifier: Notifier,
                 owned: Callable[[Sequence[str]], list[str]] = list):
        self.store = store
        self.alarms = AlarmStore(store.index)
        self.notifier = notifier
        # The alarms this appliance evaluates (coordination.Share.mine, by alarm name: each
        # appliance has its own index, so the name is what the appliances share).
        self.owned = owned

    def run_round(self, now: float | None = None) -> RoundReport:
        started = time.perf_counter()
        now = time.time() if now is None else now
        report = RoundReport()
        alarms = self.alarms.enabled()
        mine = set(self.owned(sorted({a.name for a in alarms})))
        alarms = [a for a in alarms if a.name in mine]
        report.alarms = len(alarms)
        active = [a for a in alarms if within(a.time_constraints, now)]
        report.outside_time_constraints = len(alarms) - len(active)
        reader = RoundReader(self.store.index, self.store.measures, now)
        reader.prepare(leaf for a in active for leaf in a.leaves())
        decided: list[tuple[Alarm, Decision]] = []
        for alarm in active:
            try:
                decision = evaluate(alarm, reader)
            except Exception:  # one broken alarm must not stop the round
                log.exception("evaluating alarm %s (%s) failed", alarm.name, alarm.alarm_id)
                report.errors += 1
                continue
            report.evaluated += 1
            if decision is not None:
                decided.append((alarm, decision))
        report.transitions = self.alarms.record(
            Transition(a.alarm_id, a.severity, a.state, d.state, d.reason, d.reason_data, now)
            for a, d in decided if d.changed
        )
        for alarm, d in decided:
            self.notifier.notify(alarm, alarm.state, d.state, d.reason, d.reason_data)
        report.notifications = len(decided)
        report.reads = reader.fetches
        report.seconds = time.perf_counter() - started
        return report
