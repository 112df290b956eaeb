"""The publisher machinery every sink shares: a bounded queue, a sender thread, backoff.

Kept apart from the package's :func:`~appliance.publishers.build` so that the sinks
(``remote_write``, ``gnocchi``) subclass :class:`Publisher` without importing the module
that imports them.
"""

from __future__ import annotations

import abc
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from appliance import runstate
from appliance.model import PollResult
from appliance.scaleout_config import GnocchiPublisher, RemoteWritePublisher

log = logging.getLogger(__name__)

#: How often the sender thread writes its figures for the other processes.
STATE_EVERY = 2.0


class PermanentError(Exception):
    """The receiver refused the batch itself (a 4xx): retrying would not help."""


class Publisher(abc.ABC):
    """One sink: ``__call__`` queues, a thread sends. Subclasses convert and send."""

    kind = ""

    def __init__(self, settings: RemoteWritePublisher | GnocchiPublisher, run_dir: Path,
                 source: str):
        self.settings = settings
        self.name = settings.name
        self.source = source
        self.run_dir = run_dir
        self._queue: deque[Any] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._stopped = threading.Event()  # wakes a backoff early only to stop
        self._inflight = 0
        self._next_state = 0.0
        self.sent = self.dropped = self.failures = 0
        self.last_success: float | None = None
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"publish-{self.kind}",
                                        daemon=True)
        self._thread.start()

    @abc.abstractmethod
    def convert(self, result: PollResult) -> list[Any]:
        """The queue items of a poll's result (in the agent's thread: keep it cheap)."""

    @abc.abstractmethod
    def send(self, batch: Sequence[Any]) -> None:
        """Send one batch; raise :class:`PermanentError` or ``OSError``-like on failure."""

    def __call__(self, result: PollResult) -> None:
        items = self.convert(result)
        if items:
            with self._cond:
                self._queue.extend(items)
                self._trim()
                self._cond.notify()
        self._save_state()  # from here too: a send that hangs must not hide the backlog

    def _save_state(self, force: bool = False) -> None:
        if force or time.monotonic() >= self._next_state:
            self._next_state = time.monotonic() + STATE_EVERY
            runstate.write(self.run_dir, "publishers", f"{self.source}-{self.name}",
                           self.stats())

    def _trim(self) -> None:
        """Drop the oldest items over the bound (caller holds the lock)."""
        over = len(self._queue) - self.settings.max_queue
        for _ in range(max(0, over)):
            self._queue.popleft()
        self.dropped += max(0, over)

    def backlog(self) -> int:
        return len(self._queue) + self._inflight

    def stats(self) -> dict[str, Any]:
        return {"publisher": self.name, "kind": self.kind, "source": self.source,
                "backlog": self.backlog(), "sent": self.sent, "dropped": self.dropped,
                "failures": self.failures, "last_success": self.last_success,
                "last_error": self.last_error, "updated": time.time()}

    def _run(self) -> None:
        backoff = 0.0
        while True:
            with self._cond:
                if not self._queue and not self._stopping:
                    self._cond.wait(STATE_EVERY)
                if self._stopping and (not self._queue or backoff):
                    break
                n = min(self.settings.batch_size, len(self._queue))
                batch = [self._queue.popleft() for _ in range(n)]
                self._inflight = n
            if batch:
                backoff = self._attempt(batch, backoff)
                with self._cond:
                    self._inflight = 0
                    if backoff:  # not sent: back at the head of the queue, oldest first
                        self._queue.extendleft(reversed(batch))
                        self._trim()
            self._save_state()
            if backoff:  # new samples do not cut it short: only a stop does
                self._stopped.wait(backoff * random.uniform(0.8, 1.2))
        self._save_state(force=True)

    def _attempt(self, batch: list[Any], backoff: float) -> float:
        """Send ``batch``; the backoff to wait before the next attempt (0: go on)."""
        try:
            self.send(batch)
        except PermanentError as exc:
            self.dropped += len(batch)
            self.last_error = str(exc)
            log.error("publisher=%r batch_refused samples=%d error=%s", self.name, len(batch), exc)
            return 0.0
        except Exception as exc:  # the receiver is down or slow: keep the batch, back off
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            backoff = min(self.settings.max_backoff, max(0.5, backoff * 2))
            log.warning("publisher=%r send_failed retry_in=%.1fs error=%s", self.name, backoff,
                        self.last_error)
            return backoff
        self.sent += len(batch)
        self.last_success = time.time()
        self.last_error = None
        return 0.0

    def close(self, grace: float = 2.0) -> None:
        """Stop after sending what is queued, for at most ``grace`` seconds."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._stopped.set()
        self._thread.join(grace)
