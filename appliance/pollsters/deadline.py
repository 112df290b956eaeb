"""Run one blocking read per key on daemon threads, each read with its own time limit.

Why this exists: a libvirt call on a hung QEMU monitor, or a ``read()`` of a wedged hwmon
chip, blocks its thread inside C, and Python cannot interrupt it. So the caller never waits
for such a call past its limit: the call keeps its thread, its key is reported as timed out,
and while that call is still stuck the key is skipped at once on later runs (instead of
piling up one more stuck thread per poll). Threads are daemons so a stuck call never
blocks the process from exiting.

Calls run on one thread until they stop answering promptly: measured on 1000 test-driver
domains, four threads contending for the GIL and libvirt's locks burnt 2.5x the CPU of one
(0.30 s against 0.12 s a poll) for no gain in wall time. A run adds a thread whenever no call
has finished for :data:`STRAGGLER_SECONDS` (up to ``workers`` threads that are not stuck), so
one slow or hung call delays the others by that long at most. Idle threads exit.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

#: No call finished for this long: the running ones are slow, start another thread.
STRAGGLER_SECONDS = 0.05
#: A thread with no call for this long exits (polls are seconds apart).
IDLE_SECONDS = 1.0


@dataclass(slots=True)
class Outcome(Generic[T]):
    """What became of one keyed call: a value, an exception, or a reason it was not read."""

    key: str
    value: T | None = None
    exc: BaseException | None = None
    error: str | None = None  # set for exceptions, timeouts and skips
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(slots=True, eq=False)
class _Job:
    key: str
    fn: Callable[[], object]
    done: queue.SimpleQueue[Outcome[object]]
    started: float | None = None
    finished: bool = False
    abandoned: bool = False


class DeadlineRunner:
    """A small pool of daemon threads that runs keyed calls with per-call time limits."""

    def __init__(self, workers: int, name: str) -> None:
        self._workers = max(1, workers)
        self._name = name
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._stuck: set[str] = set()

    @property
    def stuck(self) -> frozenset[str]:
        """Keys whose call outlived its limit and has not returned yet."""
        with self._lock:
            return frozenset(self._stuck)

    def run(
        self, calls: Mapping[str, Callable[[], T]], timeout: float, deadline: float
    ) -> dict[str, Outcome[T]]:
        """Run every call; return an outcome per key once each is done, late or skipped.

        ``timeout`` bounds one call from the moment it starts; ``deadline`` (a
        ``time.monotonic()`` value) bounds the whole run, including calls still queued.
        """
        done: queue.SimpleQueue[Outcome[object]] = queue.SimpleQueue()
        results: dict[str, Outcome[T]] = {}
        pending: dict[str, _Job] = {}
        with self._lock:
            stuck = set(self._stuck)
        for key, fn in calls.items():
            if key in stuck:
                results[key] = Outcome(key, error="previous call still running")
            else:
                pending[key] = _Job(key, fn, done)
        for job in pending.values():
            self._jobs.put(job)
        if pending:
            self._grow(1)
        # Overdue calls are looked for whenever no result came for a while (at most a quarter
        # of the limit, so a hung call is given up within 1.25 x timeout), not once per result.
        check = min(timeout / 4, STRAGGLER_SECONDS)
        while pending:
            try:
                out = done.get(timeout=max(0.0, min(check, deadline - time.monotonic())))
            except queue.Empty:
                self._expire(pending, results, timeout, deadline)
                if pending:
                    self._grow(self._workers)
            else:
                if pending.pop(out.key, None) is not None:
                    results[out.key] = out  # type: ignore[assignment]
        return results

    def _expire(
        self,
        pending: dict[str, _Job],
        results: dict[str, Outcome[T]],
        timeout: float,
        deadline: float,
    ) -> None:
        now = time.monotonic()
        with self._lock:
            for key, job in list(pending.items()):
                if job.finished:
                    continue  # its outcome is on the way
                late = job.started is not None and now - job.started >= timeout
                if not late and now < deadline:
                    continue
                job.abandoned = True
                if job.started is None:
                    error = "not started before the poll deadline"
                else:
                    self._stuck.add(key)
                    error = f"no answer within {timeout:g}s" if late else "no answer by deadline"
                results[key] = Outcome(key, error=error, duration=now - (job.started or now))
                del pending[key]

    def _grow(self, limit: int) -> None:
        """Start a thread unless ``limit`` threads exist that are not stuck.

        A run asks for one when it starts, and for up to ``workers`` whenever its calls stop
        finishing: a thread that is merely slow then gets company, a stuck one is replaced.
        """
        with self._lock:
            if self._threads - len(self._stuck) >= limit:
                return
            self._threads += 1
            threading.Thread(
                target=self._work, name=f"{self._name}-{self._threads}", daemon=True
            ).start()

    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    self._threads -= 1
                return
            with self._lock:
                if job.abandoned:
                    continue  # its run gave up before it started
                job.started = start = time.monotonic()
            try:
                out: Outcome[object] = Outcome(job.key, value=job.fn())
            except Exception as exc:  # reported to the caller, who decides what it means
                out = Outcome(job.key, exc=exc, error=f"{type(exc).__name__}: {exc}")
            out.duration = time.monotonic() - start
            with self._lock:
                job.finished = True
                if job.abandoned:
                    self._stuck.discard(job.key)
            job.done.put(out)
