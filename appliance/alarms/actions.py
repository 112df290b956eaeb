"""Alarm actions: ``log://`` and ``http(s)://`` webhooks posting Aodh's JSON payload.

Evaluation never waits for a webhook: ``notify`` only queues. Each target (scheme, host and
port) has its own lane, one thread with a bounded queue, so a target that hangs delays only
its own notifications, never another target's, and a target receives its notifications in
the order of the transitions. A delivery has a timeout per attempt
and bounded retries with exponential backoff on connection errors, timeouts and 5xx answers.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from appliance.alarms.model import Alarm

log = logging.getLogger(__name__)

LANE_WORKERS = 1  # one per target keeps that target's notifications in order
MAX_LANES = 64
MAX_QUEUED_PER_LANE = 1000
MAX_BACKOFF = 30.0


def payload(alarm: Alarm, previous: str, current: str, reason: str,
            reason_data: dict[str, Any]) -> dict[str, Any]:
    """Aodh's webhook body."""
    return {
        "alarm_name": alarm.name,
        "alarm_id": alarm.alarm_id,
        "severity": alarm.severity,
        "previous": previous,
        "current": current,
        "reason": reason,
        "reason_data": reason_data,
    }


def redact(url: str) -> str:
    """A URL fit for the log: no user info, no query (either may carry a secret)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


class Notifier:
    """Runs actions off the evaluator's thread, one lane per webhook target."""

    def __init__(self, timeout: float, retries: int, backoff: float = 0.5):
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.stats: Counter[str] = Counter()
        self._lanes: dict[str, ThreadPoolExecutor] = {}
        self._queued: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._closing = threading.Event()

    def notify(self, alarm: Alarm, previous: str, current: str, reason: str,
               reason_data: dict[str, Any]) -> None:
        """Run the alarm's actions for ``current``; returns at once."""
        body = payload(alarm, previous, current, reason, reason_data)
        for url in alarm.actions_for(current):
            if url.lower().startswith("log://"):
                log.info("alarm %s (%s) %s -> %s: %s", alarm.name, alarm.alarm_id, previous,
                         current, reason)
                self._count("logged")
            else:
                self._queue(url, body)

    def _queue(self, url: str, body: dict[str, Any]) -> None:
        parts = urlsplit(url)
        lane = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        with self._lock:
            if self._closing.is_set():
                return
            if self._queued[lane] >= MAX_QUEUED_PER_LANE:
                self.stats["dropped"] += 1
                log.warning("webhook %s is %d notifications behind: dropping one",
                            redact(url), self._queued[lane])
                return
            pool = self._lanes.get(lane)
            if pool is None:
                if len(self._lanes) >= MAX_LANES:
                    lane = "(shared)"  # past the cap, further targets share one lane
                pool = self._lanes.get(lane)
                if pool is None:
                    pool = self._lanes[lane] = ThreadPoolExecutor(
                        LANE_WORKERS, thread_name_prefix="alarm-webhook"
                    )
            self._queued[lane] += 1
        pool.submit(self._deliver, lane, url, body)

    def _deliver(self, lane: str, url: str, body: dict[str, Any]) -> None:
        try:
            self._post(url, body)
        finally:
            with self._lock:
                self._queued[lane] -= 1

    def _post(self, url: str, body: dict[str, Any]) -> None:
        import requests  # ~3 MB that an evaluator with no HTTP action never loads

        headers = {"x-openstack-request-id": f"req-{uuid.uuid4()}"}
        for attempt in range(self.retries + 1):
            if attempt:
                delay = min(MAX_BACKOFF, self.backoff * 2 ** (attempt - 1))
                if self._closing.wait(delay):
                    return
            try:
                response = requests.post(url, json=body, headers=headers, timeout=self.timeout)
            except requests.RequestException as exc:
                problem = type(exc).__name__
            else:
                if response.status_code < 500:
                    if response.ok:
                        self._count("delivered")
                    else:
                        self._count("refused")
                        log.warning("webhook %s answered %d", redact(url), response.status_code)
                    return
                problem = f"HTTP {response.status_code}"
            log.warning("webhook %s failed (%s), attempt %d of %d", redact(url), problem,
                        attempt + 1, self.retries + 1)
        self._count("failed")

    def _count(self, outcome: str) -> None:
        with self._lock:
            self.stats[outcome] += 1

    def pending(self) -> int:
        with self._lock:
            return sum(self._queued.values())

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for queued notifications; True if none is left."""
        deadline = time.monotonic() + timeout
        while self.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self.pending()

    def close(self, wait: bool = False) -> None:
        """Stop taking work; backoff sleeps end at once, requests in flight time out."""
        self._closing.set()
        with self._lock:
            lanes = list(self._lanes.values())
        for pool in lanes:
            pool.shutdown(wait=wait, cancel_futures=not wait)
