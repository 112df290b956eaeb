"""The SNMP pollster: every target read concurrently, each within its own deadline.

Per target and poll: one GET for the scalars (sysObjectID and sysDescr pick the definition
groups that apply), then one multi-column GETBULK walk per table the chosen groups read,
shared by every meter of that table. A target that is down, slow or answers garbage is
reported in its :class:`TargetReport` and delays nobody else: targets run as asyncio tasks
under a concurrency bound, each cut off at the deadline.

State kept between polls, per target: the max-repetitions that worked, the counter
tracker (wraps, restarts) and the table rows seen last time (to end vanished ones).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from appliance.config import SnmpSettings, SnmpTarget
from appliance.model import PollResult, Resource, TargetReport
from appliance.pollsters.base import Pollster
from appliance.pollsters.snmp.client import (
    Connections,
    Requester,
    Session,
    SnmpError,
)
from appliance.pollsters.snmp.converters import text
from appliance.pollsters.snmp.counters import CounterTracker
from appliance.pollsters.snmp.definitions import (
    DefinitionError,
    Group,
    Oid,
    candidates_for,
    select,
)
from appliance.pollsters.snmp.metering import DEVICE_TYPE, Reading, measure
from appliance.pollsters.snmp.walkplan import (
    SYS_DESCR,
    SYS_OBJECT_ID,
    SYS_UPTIME,
    attribute_only_columns,
    is_full_walk,
    scalar_oids,
    table_columns,
    unneeded_fallbacks,
)

log = logging.getLogger(__name__)

SOURCE = "snmp"


@dataclass
class _TargetState:
    """What one target's polls remember."""

    max_repetitions: int
    tracker: CounterTracker = field(default_factory=CounterTracker)
    rows: dict[str, Resource] = field(default_factory=dict)  # table-row resources by id
    skip: frozenset[Oid] = frozenset()  # fallback columns this device did not need
    indexes: dict[Oid, set[Oid]] = field(default_factory=dict)  # row indexes by table entry
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)  # by resource id
    polls: int = 0
    last_started: float | None = None  # monotonic; for targets with their own interval
    send: Requester | None = None  # its address resolved once
    session: Session | None = None  # the current poll's, for its figures after a failure


class SnmpPollster(Pollster):
    """Reads the configured SNMP targets with one asyncio loop, kept for its lifetime, one
    UDP socket for all v2c targets and pysnmp engines for v3 (one per credential set)."""

    source = SOURCE

    def __init__(
        self,
        settings: SnmpSettings,
        groups: dict[str, Group],
    ):
        self._settings = settings
        self._groups = groups
        self._configured = {t.name: t for t in settings.targets}
        self._targets = dict(self._configured)
        for target in settings.targets:
            candidates_for(groups, target.groups)  # an unknown group name fails at start
        self._state = {
            t.name: _TargetState(max_repetitions=t.max_repetitions) for t in settings.targets
        }
        self._runtime: Callable[[], list[SnmpTarget]] | None = None
        self._loop = asyncio.new_event_loop()
        self._connections = Connections()

    def use_runtime_targets(self, source: Callable[[], list[SnmpTarget]]) -> None:
        """Poll the targets ``source`` returns too (the index's runtime targets, see
        :mod:`appliance.snmp_programs`), asked once per cycle."""
        self._runtime = source

    def targets(self) -> Sequence[str]:
        """The configured targets plus the runtime ones there are now (read once per
        cycle, so discovery and the API add and remove targets without a restart)."""
        if self._runtime is not None:
            self._refresh(self._runtime())
        return list(self._targets)

    def _refresh(self, runtime: list[SnmpTarget]) -> None:
        targets = dict(self._configured)
        for target in runtime:
            if target.name in targets:
                continue  # a configured target of the same name wins
            try:
                candidates_for(self._groups, target.groups)
            except DefinitionError as exc:
                log.warning("runtime snmp target %s skipped: %s", target.name, exc)
                continue
            targets[target.name] = target
        for name, target in targets.items():
            if name not in self._state or self._targets.get(name) != target:
                self._state[name] = _TargetState(max_repetitions=target.max_repetitions)
        for name in set(self._state) - set(targets):
            del self._state[name]
        self._targets = targets

    def poll(self, targets: Sequence[str], deadline: float) -> PollResult:
        """Poll the targets that are due (see :meth:`_due`) and report each of them."""
        now = time.monotonic()
        due = [name for name in targets if self._due(name, now)]
        return self._loop.run_until_complete(self._poll_all(due, deadline))

    def _due(self, name: str, now: float) -> bool:
        """A target with its own, longer ``interval`` sits out the cycles in between.

        The agent runs one cycle per ``pollsters.snmp.interval``; half a cycle of slack
        makes a 300 s target of a 60 s source run every 5th cycle, not every 6th.
        """
        target, state = self._targets.get(name), self._state.get(name)
        if target is None or state is None or target.interval is None:
            return True
        if state.last_started is not None and (
            now - state.last_started < target.interval - self._settings.interval / 2
        ):
            return False
        state.last_started = now
        return True

    def close(self) -> None:
        # A poll still running in the agent's worker thread owns the loop: leave it be,
        # the process is on its way out.
        if self._loop.is_closed() or self._loop.is_running():
            return
        self._connections.close()
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        if pending:
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.run_until_complete(asyncio.sleep(0))  # the socket's close callback
        self._loop.close()

    async def _poll_all(self, targets: Sequence[str], deadline: float) -> PollResult:
        bound = asyncio.Semaphore(self._settings.concurrency)
        await self._connections.open()
        result = PollResult()
        for part in await asyncio.gather(*(self._poll_one(n, deadline, bound) for n in targets)):
            result.extend(part)
        return result

    async def _poll_one(self, name: str, deadline: float, bound: asyncio.Semaphore) -> PollResult:
        started_at, t0 = time.time(), time.monotonic()
        target = self._targets.get(name)
        if target is None:
            return _failed(name, started_at, 0.0, f"unknown target {name!r}", {})
        state = self._state[name]
        state.session = None
        async with bound:
            try:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                result = await asyncio.wait_for(self._read(target, state), remaining)
            except TimeoutError:
                error = f"deadline exceeded after {time.monotonic() - t0:.1f}s"
            except SnmpError as exc:
                error = str(exc)
            except Exception as exc:  # one broken target must never fail the whole poll
                # The traceback only at debug level: its message is not scrubbed there.
                log.debug("snmp target %s: unexpected failure", name, exc_info=True)
                error = f"unexpected {type(exc).__name__}: {exc}"
            else:
                result.reports[0].started_at = started_at
                result.reports[0].duration = time.monotonic() - t0
                return result
            finally:
                if state.session is not None:
                    state.max_repetitions = state.session.max_repetitions
        error = _scrub(error, target)
        log.warning("snmp target %s: %s", name, error)
        detail = _detail(state.session, state)
        return _failed(name, started_at, time.monotonic() - t0, error, detail)

    async def _session(self, target: SnmpTarget, state: _TargetState) -> Session:
        """This poll's session; the way to the target (its address resolved once) is kept."""
        if state.send is None:
            state.send = await self._connections.requester(target)
        return Session(state.send, state.max_repetitions)

    async def _read(self, target: SnmpTarget, state: _TargetState) -> PollResult:
        session = state.session = await self._session(target, state)
        candidates = candidates_for(self._groups, target.groups)
        reading = Reading(scalars=await session.get(scalar_oids(candidates)))
        groups = select(
            self._groups,
            target.groups,
            _text(reading, SYS_OBJECT_ID),
            _text(reading, SYS_DESCR),
        )
        full = is_full_walk(target.name, state.polls)
        slow = frozenset() if full else attribute_only_columns(groups)
        skip = frozenset() if full else state.skip | slow
        tables = table_columns(groups, skip)
        seen: dict[Oid, set[Oid]] = {}
        for entry, columns in tables.items():
            known = state.indexes.get(entry)
            walked = await session.walk(columns, len(known) if known is not None else None)
            seen[entry] = {index for rows in walked.values() for index in rows}
            reading.tables.update(walked)
        if full:
            state.skip = unneeded_fallbacks(groups, reading.tables)
        else:
            await _read_new_rows(session, groups, reading, slow, state.indexes, seen)
        state.indexes = seen
        state.polls += 1

        now = time.time()
        uptime = reading.scalars.get(SYS_UPTIME)
        restarted = state.tracker.observe_uptime(
            uptime.value if uptime is not None and isinstance(uptime.value, int) else None
        )
        known = None if full else state.attributes
        measured = measure(target, groups, reading, state.tracker, now, known)
        state.tracker.forget(measured.counter_keys)

        rows = {s.resource.id: s.resource for s in measured.samples}
        rows = {rid: r for rid, r in rows.items() if r.type != DEVICE_TYPE}
        ended = [replace(r, ended_at=now) for rid, r in state.rows.items() if rid not in rows]
        state.rows = rows
        state.attributes = {rid: r.attributes for rid, r in rows.items()}

        detail = _detail(session, state) | {
            "groups": [g.name for g in groups],
            "tables": len(tables),
            "fallback_columns_skipped": len(skip - slow),
            "attribute_columns_skipped": len(slow),
            "restarted": restarted,
            "ended": len(ended),
        }
        report = TargetReport(SOURCE, target.name, 0.0, 0.0, len(measured.samples), None, detail)
        return PollResult(measured.samples, measured.resources + ended, [report])


async def _read_new_rows(
    session: Session,
    groups: list[Group],
    reading: Reading,
    slow: frozenset[Oid],
    before: dict[Oid, set[Oid]],
    now: dict[Oid, set[Oid]],
) -> None:
    """GET the attribute-only (``slow``) columns of rows that appeared since the last poll;
    a table's rows are those its meters' tables have."""
    where: dict[Oid, tuple[Oid, Oid]] = {}
    for group in groups:
        for table in group.spec.tables:
            entries = {oid[:-1] for meter in table.meters for oid in meter.oids()}
            new = set().union(*(now.get(e, set()) - before.get(e, set()) for e in entries))
            for spec in table.attributes.values():
                for column in slow.intersection(spec.oids()):
                    where.update((column + index, (column, index)) for index in new)
    if where:
        for oid, cell in (await session.get(list(where))).items():
            column, index = where[oid]
            reading.tables.setdefault(column, {})[index] = cell


def _text(reading: Reading, oid: Oid) -> str:
    cell = reading.scalars.get(oid)
    return "" if cell is None else text(cell.value)


def _detail(session: Session | None, state: _TargetState) -> dict[str, Any]:
    if session is None:
        return {"pdus": 0, "backoffs": 0, "max_repetitions": state.max_repetitions}
    return {
        "pdus": session.stats.pdus,
        "backoffs": session.stats.backoffs,
        "max_repetitions": session.max_repetitions,
    }


def _failed(
    name: str, started_at: float, duration: float, error: str, detail: dict[str, Any]
) -> PollResult:
    return PollResult(reports=[TargetReport(SOURCE, name, started_at, duration, 0, error, detail)])


def _scrub(message: str, target: SnmpTarget) -> str:
    """Belt and braces: no secret of the target survives in an error message."""
    for secret in (target.community, target.auth_key, target.priv_key):
        value = secret.get_secret_value() if secret is not None else ""
        if value:
            message = message.replace(value, "***")
    return message
