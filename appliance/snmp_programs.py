"""The SNMP programs beside the pollster, which write to the index (so they are not
pollsters): the trap receiver (on a thread of the SNMP agent's process, or ``snmp-traps``
when there is no agent) and the discovery loop (``snmp-discovery``), plus the SNMP agent's
view of the runtime targets.

The reading halves stay in :mod:`appliance.pollsters.snmp`: :class:`~.traps.TrapHandler`
(behind a v2c or a pysnmp receiver) turns traps into events and :func:`~.discovery.sweep`
finds agents; here their results are recorded, as the agent records a poll's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from pathlib import Path

from appliance.config import Settings, SnmpDiscoverySettings, SnmpTarget
from appliance.index import Index, snmp_targets
from appliance.index import events as index_events
from appliance.model import Event, TargetReport
from appliance.pollsters import snmp as snmp_pollster
from appliance.pollsters.snmp.discovery import Sweep, sweep
from appliance.pollsters.snmp.pollster import SnmpPollster
from appliance.workers import Worker, restart_delay

log = logging.getLogger(__name__)


class RuntimeTargets:
    """The runtime targets for the SNMP agent, read once per cycle; the index is opened
    when it first exists (a fresh data dir has none until the store starts)."""

    def __init__(self, index_path: Path):
        self._path = index_path
        self._index: Index | None = None

    def current(self) -> list[SnmpTarget]:
        if self._index is None:
            if not self._path.exists():
                return []
            self._index = Index(self._path)
        return [target for target, _ in snmp_targets.load(self._index)]

    def close(self) -> None:
        if self._index is not None:
            self._index.close()


def attach_runtime_targets(pollster: SnmpPollster, settings: Settings) -> RuntimeTargets:
    """Make ``pollster`` poll the index's runtime targets too, from its next cycle on."""
    runtime = RuntimeTargets(settings.index_path)
    pollster.use_runtime_targets(runtime.current)
    return runtime


# --- traps --------------------------------------------------------------------------------

HEALTH_EVERY = 30.0  # seconds between health reports when no trap comes


def receive_traps(settings: Settings, health_every: float = HEALTH_EVERY) -> bool:
    """The ``snmp-traps`` program: receive until SIGTERM, writing each event to the index
    and the receiver's counters as its health report; the runtime targets are read again
    every ``health_every`` seconds.

    The receiver is the v2c one (:mod:`~appliance.pollsters.snmp.traps_v2c`, no pysnmp)
    unless a target is v3. When a v3 target appears later, this returns True instead of
    switching in place: the process ends (status 0) and ``workers`` forks it again, at once
    after a stable run, and the fresh process starts pysnmp's receiver; so pysnmp is only
    ever loaded where it is used. False: stopped by SIGTERM.
    """
    from appliance.pollsters.snmp.traps import SOURCE, Receiver, TrapHandler, needs_pysnmp

    snmp = settings.pollsters.snmp
    mibs = snmp_pollster.mib_names(snmp)
    settings.index_path.parent.mkdir(parents=True, exist_ok=True)
    index = Index(settings.index_path)
    started = time.time()

    def report() -> None:
        detail = vars(receiver.counters) | {"rejected_credentials": receiver.rejected_credentials()}
        index.record_reports(
            [TargetReport(SOURCE, "receiver", started, 0.0, receiver.counters.events, None,
                          detail)]
        )

    def emit(events: list[Event]) -> None:
        index_events.record(index, events)
        report()

    def runtime() -> list[SnmpTarget]:
        return [target for target, _ in snmp_targets.load(index)]

    handler = TrapHandler(snmp, snmp_pollster.groups(snmp), mibs, emit)
    receiver: Receiver
    v3 = needs_pysnmp([*snmp.targets, *runtime()])
    if v3:
        from appliance.pollsters.snmp.traps_pysnmp import PysnmpTrapReceiver

        receiver = PysnmpTrapReceiver(handler)
    else:
        from appliance.pollsters.snmp.traps_v2c import V2cTrapReceiver

        receiver = V2cTrapReceiver(handler)

    async def main() -> bool:
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        if threading.current_thread() is threading.main_thread():
            # On the SNMP agent's thread the agent handles the signals and ends the process.
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, done.set)
        host, port = await receiver.start(runtime())
        log.info("snmp traps: listening on %s:%d (%s receiver)", host, port,
                 "pysnmp" if v3 else "v2c")
        try:
            while not done.is_set():
                targets = runtime()
                if not v3 and needs_pysnmp(targets):
                    log.info("snmp traps: v3 target %s appeared; this receiver reads v2c "
                             "only, so the process ends and starts again on pysnmp",
                             ", ".join(t.name for t in targets if t.version == "3"))
                    return True
                receiver.update(targets)
                index_events.prune(index, time.time() - snmp.traps.keep_days * 86400)
                report()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), health_every)
        finally:
            receiver.close()
        return False

    try:
        return asyncio.run(main())
    finally:
        index.close()


def receive_traps_beside(settings: Settings) -> threading.Thread:
    """Receive traps on a daemon thread of this process (the SNMP agent's) until it ends.

    The receiver never stops the agent: when it fails (its port taken, the index
    unreadable) it is started again after the back-off the ``workers`` parent gives a process
    that keeps dying at start (:func:`appliance.workers.restart_delay`), and a v3
    target appearing makes it start again on pysnmp in place (the process it shares also
    polls, so pysnmp's import is not the reason to end it that it is for ``snmp-traps``).
    """

    def run() -> None:
        restarts = Worker("snmp-traps", run)  # only its back-off is used
        while True:
            started = time.monotonic()
            try:
                while receive_traps(settings):
                    pass  # a v3 target appeared: again, now on pysnmp
                return
            except Exception:
                delay = restart_delay(restarts, time.monotonic() - started)
                log.exception("snmp traps: the receiver stopped; starting it again in %.0f s",
                              delay)
            time.sleep(delay)

    thread = threading.Thread(target=run, name="snmp-traps", daemon=True)
    thread.start()
    return thread


# --- discovery ----------------------------------------------------------------------------


def sweep_once(settings: Settings, cfg: SnmpDiscoverySettings) -> Sweep:
    return asyncio.run(sweep(cfg, cfg.networks, snmp_pollster.groups(settings.pollsters.snmp)))


def record(settings: Settings, result: Sweep) -> list[str]:
    """Add what answered as runtime targets in the data dir's index."""
    settings.index_path.parent.mkdir(parents=True, exist_ok=True)
    index = Index(settings.index_path)
    found = [
        (f.target, {"sys_object_id": f.sys_object_id, "sys_descr": f.sys_descr,
                    "sys_name": f.sys_name})
        for f in result.found
    ]
    try:
        return snmp_targets.record_found(index, found, settings.pollsters.snmp.targets)
    finally:
        index.close()


def discover_forever(settings: Settings, cfg: SnmpDiscoverySettings) -> None:
    """Sweep every ``cfg.interval`` seconds until SIGTERM; a failed sweep waits for the next."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: stop.set())
    while not stop.is_set():
        try:
            result = sweep_once(settings, cfg)
            added = record(settings, result)
        except Exception:  # the index may be restarting: try at the next interval
            log.exception("snmp discovery sweep failed")
        else:
            log.info("snmp discovery: %d answered of %d probed in %.1fs, %d new targets%s",
                     len(result.found), result.probed, result.seconds, len(added),
                     f" ({', '.join(added)})" if added else "")
        stop.wait(cfg.interval)
