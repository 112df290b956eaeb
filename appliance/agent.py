"""The scheduler: poll one source kind on its interval and hand each result to the sinks.

One agent runs per source kind, each in its own supervised process (a hung libvirt call or a
dead SNMP device never stalls another source). Within the agent the poll runs in a worker
thread with a deadline: an overrunning poll is reported and the next one is not started
until it returns, so a stuck source cannot pile up threads.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace

from appliance import gcpolicy
from appliance.model import PollResult, TargetReport
from appliance.pollsters.base import Pollster
from appliance.storage.errors import is_disk_full

log = logging.getLogger(__name__)

#: Where results go: the local store, then any publishers.
Sink = Callable[[PollResult], object]
#: Fraction of the interval a poll may take before it is reported as overrunning.
DEADLINE_FRACTION = 0.8
#: Results kept for retry while the store is unreachable (rrdcached restarting).
MAX_BACKLOG = 10


class Agent:
    def __init__(
        self,
        pollster: Pollster,
        sinks: Sequence[Sink],
        interval: float,
        jitter: float = 0.1,
        record_health: Callable[[list[TargetReport]], None] | None = None,
        owned: Callable[[Sequence[str]], list[str]] = list,
    ):
        self.pollster = pollster
        self.sinks = list(sinks)
        self.interval = interval
        self.jitter = jitter
        self.record_health = record_health
        # Which targets are this appliance's this cycle (coordination.Share.mine; all: list).
        self.owned = owned
        self.stop_event = threading.Event()
        self._events: queue.Queue[PollResult] = queue.Queue()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"poll-{pollster.source}")
        self._running: Future[PollResult] | None = None
        self._backlog: list[PollResult] = []

    def poll_once(self) -> PollResult:
        """One poll with the deadline applied; errors become reports, never exceptions."""
        source = self.pollster.source
        targets = self.owned(self.pollster.targets())
        budget = self.interval * DEADLINE_FRACTION
        started = time.time()
        if self._running is not None and not self._running.done():
            return PollResult(reports=[self._overrun(started, "previous poll still running")])
        deadline = time.monotonic() + budget
        self._running = self._executor.submit(self.pollster.poll, targets, deadline)
        try:
            # A little grace past the deadline: the pollster itself should stop by then.
            return self._running.result(timeout=budget + min(5.0, budget * 0.25))
        except TimeoutError:
            return PollResult(reports=[self._overrun(started, f"poll exceeded {budget:.1f}s")])
        except Exception as exc:  # a pollster bug must not kill the agent
            log.exception("poll of %s failed", source)
            report = TargetReport(source, source, started, time.time() - started, error=repr(exc))
            return PollResult(reports=[report])

    def _overrun(self, started: float, why: str) -> TargetReport:
        log.warning("source=%s poll_overrun reason=%s", self.pollster.source, why)
        return TargetReport(self.pollster.source, "*", started, time.time() - started, error=why)

    def deliver(self, result: PollResult) -> None:
        """Write a result to every sink; keep it for a retry if a sink is unreachable.

        A store that is down or a disk that is full is reported on every target of the
        result ("disk full: ..." / "store unavailable: ..."), so the status page names the
        problem per source while the backlog waits.
        """
        self._backlog.append(result)
        while self._backlog:
            pending = self._backlog[0]
            try:
                for sink in self.sinks:
                    sink(pending)
            except OSError as exc:
                problem = "disk full" if is_disk_full(exc) else "store unavailable"
                log.warning(
                    "source=%s write_failed problem=%s backlog=%d error=%s (will retry)",
                    self.pollster.source, problem, len(self._backlog), exc,
                )
                del self._backlog[:-MAX_BACKLOG]
                self._record([replace(r, error=f"{problem}: {exc}") for r in result.reports])
                return
            self._backlog.pop(0)
        self._record(result.reports)

    def _record(self, reports: list[TargetReport]) -> None:
        if not (self.record_health and reports):
            return
        try:
            self.record_health(reports)
        except Exception as exc:  # the index may be what is failing (a full disk)
            log.debug("source=%s health not recorded: %s", self.pollster.source, exc)

    def cycle(self) -> None:
        """Poll once, deliver, log each target's outcome."""
        result = self.poll_once()
        self.deliver(result)
        for r in result.reports:
            log.info(
                "source=%s target=%s duration=%.3f samples=%d error=%s",
                r.source, r.target, r.duration, r.samples, r.error,
            )

    def emit(self, result: PollResult) -> None:
        """For pollsters that learn of changes between polls (called from any thread)."""
        self._events.put(result)

    def run(self) -> None:
        """Poll on a fixed-rate schedule (no drift) after a random start offset, until stopped."""
        self.pollster.start_events(self.emit)
        gcpolicy.take_over()
        next_at = time.monotonic() + random.uniform(0, self.interval * self.jitter)
        try:
            while not self.stop_event.is_set():
                self._drain_events(until=next_at)
                if self.stop_event.is_set():
                    break
                self.cycle()
                # After the cycle's result is released: a collection that still saw its
                # samples would walk them all (and freeze them).
                gcpolicy.settle()
                next_at += self.interval
                if next_at < time.monotonic():  # fell behind: skip, don't burst
                    next_at = time.monotonic() + self.interval
        finally:
            self.pollster.close()
            self._executor.shutdown(wait=False, cancel_futures=True)

    def _drain_events(self, until: float) -> None:
        while not self.stop_event.is_set():
            timeout = until - time.monotonic()
            if timeout <= 0:
                return
            try:
                event = self._events.get(timeout=min(timeout, 1.0))
            except queue.Empty:
                continue
            self.deliver(event)
