"""Measures in RRD files: one file per metric, written through rrdcached, read after a flush.

The file's path comes from the metric's UUID only. A file is created at a metric's first
write, one step before its oldest measure, so a new metric accepts history. RRD accepts only
increasing timestamps per file: a measure not newer than the last one is rejected, counted
and reported, never dropped silently.

Time labels: RRD credits a value to the interval *before* its timestamp, Gnocchi puts a
measure in the bucket that *starts* at or before it. Every timestamp is therefore written
one step later than given (``ts + step``), so a measure at 12:00:00 on a 60 s policy is read
back in the 12:00:00 bucket, as Gnocchi clients expect; reports and errors use the caller's
timestamps.
"""

from __future__ import annotations

import functools
import math
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import rrdtool

from appliance.model import Kind, Metric
from appliance.storage.policy import CF_FOR_AGGREGATION, ArchivePolicy
from appliance.storage.rrdcached import RrdcachedClient
from appliance.storage.wal import WriteAheadLog

# rrdcached resets the connection on a command line longer than its 4 KiB buffer.
MAX_LINE = 3800
_STALE = re.compile(
    r"illegal attempt to update using time ([\d.]+) when last update time is ([\d.]+)"
)
DS_NAME = "v"


@dataclass(slots=True)
class Rejected:
    metric_id: str
    timestamp: float
    reason: str


@dataclass(slots=True)
class WriteOutcome:
    accepted: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    created: int = 0


def heartbeat(policy: ArchivePolicy) -> int:
    """How long a value stays valid without a new one: long enough for a 5-minute poll."""
    return max(600, 3 * policy.step)


class Measures:
    """The RRD side of the store."""

    def __init__(self, rrd_dir: Path, client: RrdcachedClient, wal: WriteAheadLog | None):
        self.rrd_dir = rrd_dir
        self.client = client
        self.wal = wal
        self._last: dict[str, float] = {}  # in RRD time (shifted)
        self._shift: dict[str, int] = {}

    @staticmethod
    @functools.lru_cache(maxsize=1 << 18)
    def relpath(metric_id: str) -> str:
        """``ab/abcdef....rrd`` for a metric id; anything but a UUID is refused.

        Cached: a steady poll writes the same metrics every time, and parsing 20k UUIDs per
        poll was a third of the write's CPU.
        """
        canonical = str(uuid.UUID(metric_id))
        return f"{canonical[:2]}/{canonical}.rrd"

    def path(self, metric_id: str) -> Path:
        return self.rrd_dir / self.relpath(metric_id)

    def exists(self, metric_id: str) -> bool:
        """Whether the metric has a file; metrics this process wrote cost no ``stat``."""
        return metric_id in self._last or self.path(metric_id).is_file()

    def _create(self, metric: Metric, policy: ArchivePolicy, first_ts: float) -> bool:
        path = self.path(metric.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        ds_type, minimum = ("DERIVE", "0") if metric.kind is Kind.CUMULATIVE else ("GAUGE", "U")
        # The bucket of the oldest measure (first_ts is already shifted by one step) begins
        # the file, so a lone measure at any second is read back in its own bucket.
        start = (int(first_ts) - policy.step) // policy.step * policy.step
        try:
            rrdtool.create(
                str(path),
                "--start", str(start),
                "--step", str(policy.step),
                "--no-overwrite",
                f"DS:{DS_NAME}:{ds_type}:{heartbeat(policy)}:{minimum}:U",
                *policy.rras(),
            )
        except rrdtool.OperationalError:
            if not path.is_file():
                raise
            return False  # another process created it first
        self._last[metric.id] = float(start)
        return True

    def _last_update(self, metric_id: str) -> float:
        last = self._last.get(metric_id)
        if last is None:
            last = self._last[metric_id] = float(rrdtool.last(str(self.path(metric_id))))
        return last

    def write(
        self, items: Iterable[tuple[Metric, ArchivePolicy, Sequence[tuple[float, float]]]]
    ) -> WriteOutcome:
        """Write points of many metrics in one rrdcached batch."""
        out = WriteOutcome()
        pending: list[tuple[Metric, list[tuple[float, str]]]] = []
        isfinite = math.isfinite
        for metric, policy, points in items:
            shift = self._shift[metric.id] = policy.step
            good = [(ts + shift, v) for ts, v in points if isfinite(ts) and isfinite(v)]
            if len(good) != len(points):
                out.rejected.extend(
                    Rejected(metric.id, ts, "not a finite number")
                    for ts, v in points
                    if not (isfinite(ts) and isfinite(v))
                )
            if not good:
                continue
            good.sort()  # linear when the points already come in order
            if not self.exists(metric.id) and self._create(metric, policy, good[0][0]):
                out.created += 1
            last = self._last_update(metric.id)
            fresh_points = []
            for ts, value in good:  # also drops a repeated timestamp within the batch
                if ts <= last:
                    out.rejected.append(_stale(metric.id, ts, last, shift))
                else:
                    fresh_points.append((ts, value))
                    last = ts
            # DERIVE accepts integers only ("not a simple signed integer: '100.0'").
            if metric.kind is Kind.CUMULATIVE:
                fresh = [(ts, f"{ts:.3f}:{int(v)}") for ts, v in fresh_points]
            else:
                fresh = [(ts, f"{ts:.3f}:{float(v)!r}") for ts, v in fresh_points]
            if fresh:
                pending.append((metric, fresh))
        for _attempt in range(3):
            if not pending:
                break
            pending = self._send(pending, out)
        for metric, points in pending:
            shift = self._shift[metric.id]
            out.rejected.extend(
                Rejected(metric.id, ts - shift, "write conflict") for ts, _ in points
            )
        return out

    def _send(
        self, pending: list[tuple[Metric, list[tuple[float, str]]]], out: WriteOutcome
    ) -> list[tuple[Metric, list[tuple[float, str]]]]:
        """One BATCH round; returns what must be retried after a concurrent writer's update."""
        lines: list[str] = []
        owners: list[tuple[Metric, list[tuple[float, str]]]] = []
        for metric, points in pending:
            rel = self.relpath(metric.id)
            start, size = 0, len(rel)
            for i, (_, item) in enumerate(points):
                if size + len(item) + 1 > MAX_LINE and i > start:
                    lines.append(rel + " " + " ".join(p[1] for p in points[start:i]))
                    owners.append((metric, points[start:i]))
                    start, size = i, len(rel)
                size += len(item) + 1
            lines.append(rel + " " + " ".join(p[1] for p in points[start:]))
            owners.append((metric, points[start:]))
        if self.wal is not None:
            self.wal.append(lines)
        errors = self.client.batch(["UPDATE " + line for line in lines])
        retry: list[tuple[Metric, list[tuple[float, str]]]] = []
        for i, (metric, chunk) in enumerate(owners):
            error = errors.get(i)
            if error is None:
                out.accepted += len(chunk)
                self._last[metric.id] = chunk[-1][0]
                continue
            shift = self._shift[metric.id]
            match = _STALE.search(error)
            if not match:
                self._last.pop(metric.id, None)
                out.rejected.extend(Rejected(metric.id, ts - shift, error) for ts, _ in chunk)
                continue
            # rrdcached queued the values before the refused one and stopped there.
            bad_ts, last = float(match.group(1)), float(match.group(2))
            later = []
            for ts, item in chunk:
                if ts < bad_ts:
                    out.accepted += 1
                elif ts <= last:
                    out.rejected.append(_stale(metric.id, ts, last, shift))
                else:
                    later.append((ts, item))
            self._last[metric.id] = last
            if later:
                retry.append((metric, later))
        return retry

    def flush(self, metric_id: str) -> None:
        self.client.flush(self.relpath(metric_id))

    def fetch(
        self,
        metric: Metric,
        policy: ArchivePolicy,
        aggregation: str,
        granularity: int,
        start: float | None,
        stop: float | None,
        flush: bool = True,
    ) -> list[tuple[int, float]]:
        """Known points ``(bucket start, value)`` of one aggregation at one granularity.

        For a cumulative metric the values are rates per second (RRD DERIVE).
        """
        path = self.path(metric.id)
        if not path.is_file():
            return []
        if flush:
            self.flush(metric.id)
        points = next(i.points for i in policy.definition if i.granularity == granularity)
        last = rrdtool.last(str(path))
        end = last if stop is None else min(stop, last + granularity)
        earliest = (last // granularity) * granularity - (points - 1) * granularity
        begin = earliest if start is None else max(start, earliest)
        begin = int(begin // granularity) * granularity - granularity
        end = int(math.ceil(end / granularity)) * granularity
        if end <= begin:
            return []
        (f_start, _f_end, step), _names, rows = rrdtool.fetch(
            str(path), CF_FOR_AGGREGATION[aggregation],
            "-r", str(granularity), "-s", str(begin), "-e", str(end),
        )
        if step != granularity:
            return []
        lo = start if start is not None else -math.inf
        hi = stop if stop is not None else math.inf
        out = []
        for i, (value,) in enumerate(rows):
            if value is None:
                continue
            ts = f_start + i * step
            if ts + step > lo and ts < hi:
                out.append((ts, value))
        return out

    def delete(self, metric_id: str) -> None:
        self._last.pop(metric_id, None)
        self.client.command(f"FORGET {self.relpath(metric_id)}")
        self.path(metric_id).unlink(missing_ok=True)


def _stale(metric_id: str, rrd_ts: float, rrd_last: float, shift: int) -> Rejected:
    return Rejected(
        metric_id,
        rrd_ts - shift,
        f"not newer than the metric's last measure ({rrd_last - shift:.3f})",
    )
