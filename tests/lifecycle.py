"""Helpers for tests of an appliance's life: a writer that keeps what was acknowledged, and
handles on the supervised processes to kill."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

import requests

from tests.conftest import RunningAppliance, wait_for

STEP = 60


def supervisorctl(app: RunningAppliance, *args: str) -> str:
    conf = app.data_dir / "run" / "supervisord.conf"
    out = subprocess.run(
        [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(conf), *args],
        capture_output=True, text=True, timeout=30,
    )
    return out.stdout.strip()


def program_pid(app: RunningAppliance, name: str) -> int:
    """The pid of a supervised program, or of a process that the ``workers`` program forked
    (``poll-host``, ``alarm-evaluator``: appliance/workers.py); 0 while it is not running."""
    from appliance.web.ui.health import forked_rows

    text = supervisorctl(app, "pid", name)
    if text.isdigit():
        return int(text)
    parent = supervisorctl(app, "pid", "workers")
    if not parent.isdigit() or parent == "0":
        return 0
    return next((row["pid"] for row in forked_rows("workers", int(parent))
                 if row["name"] == name), 0)


def create_metrics(app: RunningAppliance, count: int) -> list[str]:
    ids = []
    for i in range(count):
        r = requests.post(
            f"{app.url}/v1/metric", headers=app.headers, timeout=10,
            json={"name": f"pushed.{i}", "unit": "B", "archive_policy_name": "medium"},
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids


@dataclass
class Writer:
    """Pushes one measure per metric per round through the batch API, each round a minute
    of history after the previous one (with a fractional second, as pollsters send them).

    Only what a 2xx acknowledged counts as written; 503 and dropped connections are retried
    with the same round. Any other answer is kept in ``bad``.
    """

    app: RunningAppliance
    metric_ids: list[str]
    base: float = field(default_factory=lambda: (time.time() // STEP - 6 * 1440) * STEP)
    acked: list[tuple[float, float]] = field(default_factory=list)
    ack_times: list[tuple[float, float]] = field(default_factory=list)  # (sent, answered)
    statuses: dict[str, int] = field(default_factory=dict)
    bad: list[str] = field(default_factory=list)
    round: int = 0
    retrying: bool = False  # the current round was sent before without an answer

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def push_once(self) -> bool:
        """Try the next round once; True if it was acknowledged."""
        sent = time.monotonic()
        ts = self.base + STEP * (self.round + 1) + 0.5
        value = float(100 + self.round)
        body = {mid: [{"timestamp": ts, "value": value}] for mid in self.metric_ids}
        try:
            r = requests.post(f"{self.app.url}/v1/batch/metrics/measures", json=body,
                              headers=self.app.headers, timeout=10)
        except requests.RequestException as exc:
            self._count(type(exc).__name__)
            self.retrying = True
            return False
        self._count(str(r.status_code))
        if r.status_code == 503:
            self.retrying = True
            if "Retry-After" not in r.headers or set(r.json()) != {"title", "description", "code"}:
                self.bad.append(f"503 without Retry-After or JSON error: {r.text[:200]}")
            return False
        if r.status_code // 100 != 2:
            self.bad.append(f"{r.status_code}: {r.text[:1000]}")
            return False
        body = r.json()
        # A round whose earlier try lost its answer (a worker killed mid-request) may have
        # been written then: refused now as "not newer", it is in the store all the same,
        # and missing() checks that it is.
        if body["rejected_count"] and not (
            self.retrying and all("not newer" in x["reason"] for x in body["rejected"])
        ):
            self.bad.append(f"rejected: {body['rejected'][:3]}")
        self.retrying = False
        self.acked.append((ts, value))
        self.ack_times.append((sent, time.monotonic()))
        self.round += 1
        return True

    def _count(self, key: str) -> None:
        self.statuses[key] = self.statuses.get(key, 0) + 1

    def push(self, rounds: int) -> None:
        for _ in range(rounds):
            wait_for(self.push_once, timeout=60, interval=0.1, what="an acknowledged write")

    def start(self, pause: float = 0.02) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                if not self.push_once():
                    time.sleep(0.1)
                self._stop.wait(pause)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def first_ack_after(self, moment: float) -> float | None:
        """When the first write sent after ``moment`` was acknowledged."""
        return next((done for sent, done in self.ack_times if sent > moment), None)

    def missing(self) -> dict[str, list[tuple[float, float, float | None]]]:
        """Per metric, the acknowledged points that cannot be read back with their value:
        (timestamp, value acknowledged, value read in its bucket or None), so that a failure
        says whether the point is gone or its bucket holds something else."""
        out = {}
        for mid in self.metric_ids:
            r = requests.get(
                f"{self.app.url}/v1/metric/{mid}/measures", headers=self.app.headers,
                params={"granularity": STEP, "start": self.base}, timeout=30,
            )
            assert r.status_code == 200, r.text
            got = {datetime.fromisoformat(t).timestamp(): v for t, _g, v in r.json()}
            lost = [
                (ts, value, got.get(ts // STEP * STEP)) for ts, value in self.acked
                # RRD weighs by time: half a second of the next value leaks into a bucket.
                if abs(got.get(ts // STEP * STEP, -1e9) - value) > 0.02 * value
            ]
            if lost:
                out[mid] = lost
        return out
