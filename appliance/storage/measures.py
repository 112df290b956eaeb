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
import itertools
import math
import os
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rrdtool

from appliance.model import Kind, Metric
from appliance.storage import rrdread
from appliance.storage.errors import DiskFull, StoreUnavailable, is_disk_full
from appliance.storage.policy import CF_FOR_AGGREGATION, DS_NAME, ArchivePolicy, layout
from appliance.storage.rrdcached import RrdcachedClient
from appliance.storage.rrdfile import UnsupportedFile, last_update, last_value
from appliance.storage.wal import WriteAheadLog

# rrdcached resets the connection on a command line longer than its 4 KiB buffer.
MAX_LINE = 3800
_STALE = re.compile(
    r"illegal attempt to update using time ([\d.]+) when last update time is ([\d.]+)"
)


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


#: rrdcached's command that a series' points follow.
UPDATE = "UPDATE "


def _relpath(metric_id: str) -> str:
    canonical = str(uuid.UUID(metric_id))
    return f"{canonical[:2]}/{canonical}.rrd"


@dataclass(slots=True)
class _Series:
    """What the write path keeps per metric file, so that a steady write costs no I/O.

    A metric's policy (and so its step) cannot change while the metric exists.
    """

    command: str  # UPDATE + "ab/<uuid>.rrd"
    shift: int  # the policy's step: see the module docstring
    cumulative: bool
    last: float | None = None  # RRD time of the file's last update; None until known


@dataclass(slots=True)
class _Pending:
    """One metric's points that passed the checks, in RRD time, about to be sent."""

    metric_id: str
    series: _Series
    times: list[float]
    texts: list[str]  # "ts:value"


class Measures:
    """The RRD side of the store."""

    def __init__(self, rrd_dir: Path, client: RrdcachedClient, wal: WriteAheadLog | None):
        self.rrd_dir = rrd_dir
        self.client = client
        self.wal = wal
        self._series: dict[str, _Series] = {}

    @staticmethod
    @functools.lru_cache(maxsize=1 << 18)
    def relpath(metric_id: str) -> str:
        """``ab/abcdef....rrd`` for a metric id; anything but a UUID is refused.

        Cached for the readers: a dashboard reads the same metrics every time, and parsing
        20k UUIDs per read was a third of its CPU. The write path keeps the name in its
        series instead (:meth:`_open`), so an agent holds it once, not twice.
        """
        return _relpath(metric_id)

    def path(self, metric_id: str) -> Path:
        return self.rrd_dir / self.relpath(metric_id)

    def file(self, metric_id: str) -> str:
        """The metric's file name as text, not a ``Path``: pathlib interns every part, and
        the SNMP agent's thousands of file names grew the interned-string table it shares
        with the workers' parent past a resize, a private 2 MB copy (tracemalloc)."""
        return f"{self.rrd_dir}/{self.relpath(metric_id)}"

    def exists(self, metric_id: str) -> bool:
        """Whether the metric has a file; metrics this process wrote cost no ``stat``."""
        series = self._series.get(metric_id)
        return (series is not None and series.last is not None) or os.path.isfile(
            self.file(metric_id))

    @staticmethod
    def _create(metric: Metric, policy: ArchivePolicy, first_ts: float, path: Path
                ) -> float | None:
        """Create the metric's file; return its start, or None if another process made it.

        The file is built under a temporary name and linked into place, so a crash or a full
        disk never leaves a half-written RRD where the metric's file belongs.
        """
        # The bucket of the oldest measure (first_ts is already shifted by one step) begins
        # the file, so a lone measure at any second is read back in its own bucket.
        start = (int(first_ts) - policy.step) // policy.step * policy.step
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            rrdtool.create(str(tmp), "--start", str(start), *layout(metric, policy))
            os.link(tmp, path)  # fails if another process created it first
        except FileExistsError:
            return None
        except (OSError, rrdtool.OperationalError) as exc:
            if is_disk_full(exc):
                raise DiskFull(f"create the file of metric {metric.id}", exc) from exc
            raise
        finally:
            tmp.unlink(missing_ok=True)
        return float(start)

    def _open(
        self, metric: Metric, policy: ArchivePolicy, first_ts: float | None, out: WriteOutcome
    ) -> _Series:
        """The metric's series state, its file created (before ``first_ts``) if missing."""
        series = self._series.get(metric.id)
        if series is None:
            series = self._series[metric.id] = _Series(
                f"{UPDATE}{_relpath(metric.id)}", policy.step, metric.kind is Kind.CUMULATIVE
            )
        if series.last is None and first_ts is not None:
            file = f"{self.rrd_dir}/{series.command.removeprefix(UPDATE)}"
            start = None
            if not os.path.isfile(file):
                start = self._create(metric, policy, first_ts + series.shift, Path(file))
            if start is None:
                start = last_update(file) / 1e6
            else:
                out.created += 1
            series.last = start
        return series

    def write(
        self,
        items: Iterable[tuple[Metric, Sequence[tuple[float, float]]]],
        policy_of: Callable[[str], ArchivePolicy],
    ) -> WriteOutcome:
        """Write points of many metrics in one rrdcached batch.

        ``policy_of`` maps a policy name to the policy; it is asked only for metrics whose
        file this process has not opened yet. This loop runs once per metric of every poll
        and every pushed batch, so it is kept flat, and a lone point (what a poll has per
        metric) takes the shortest way.
        """
        out = WriteOutcome()
        pending: list[_Pending] = []
        stamps: dict[float, str] = {}  # RRD time -> "ts:" (a batch repeats its timestamps)
        isfinite = math.isfinite
        series_of = self._series.get
        for metric, points in items:
            series = series_of(metric.id)
            if series is None or series.last is None:
                first = min((ts for ts, v in points if isfinite(ts) and isfinite(v)), default=None)
                series = self._open(metric, policy_of(metric.archive_policy_name), first, out)
            elif len(points) == 1:
                ts, value = points[0]
                t = ts + series.shift
                if t > series.last and isfinite(value) and t < math.inf:
                    stamp = stamps.get(t)
                    if stamp is None:
                        stamp = stamps[t] = f"{t:.3f}:"
                    text = stamp + (str(int(value)) if series.cumulative else repr(float(value)))
                    pending.append(_Pending(metric.id, series, [t], [text]))
                    continue
            p = self._accept(metric.id, series, points, stamps, out)
            if p is None:
                p = self._accept(metric.id, series, sorted(points), stamps, out)
            if p.times:
                pending.append(p)
        for _attempt in range(3):
            if not pending:
                break
            pending = self._send(pending, out)
        for p in pending:
            out.rejected.extend(
                Rejected(p.metric_id, ts - p.series.shift, "write conflict") for ts in p.times
            )
        return out

    @staticmethod
    def _accept(
        metric_id: str,
        series: _Series,
        points: Sequence[tuple[float, float]],
        stamps: dict[float, str],
        out: WriteOutcome,
    ) -> _Pending | None:
        """Points newer than the file's last one, formatted; None if they are out of order.

        Nothing is recorded in ``out`` before the order is known to be right, so the caller
        can retry with the points sorted.
        """
        isfinite = math.isfinite
        shift, cumulative = series.shift, series.cumulative
        file_last = last = series.last if series.last is not None else math.inf
        # The usual batch (increasing, all newer than the file, all finite) is formatted in
        # comprehensions, 40% cheaper than the checking loop below, which finds the rest.
        times = [ts + shift for ts, _ in points]
        if times and file_last < times[0] and times[-1] < math.inf and all(
            [a < b for a, b in itertools.pairwise(times)]
        ):
            values = [float(v) for _, v in points]
            if all(map(isfinite, values)):
                for t in times:
                    if t not in stamps:
                        stamps[t] = f"{t:.3f}:"
                if cumulative:
                    texts = [stamps[t] + str(int(v)) for t, v in zip(times, values, strict=True)]
                else:
                    texts = [stamps[t] + repr(v) for t, v in zip(times, values, strict=True)]
                return _Pending(metric_id, series, times, texts)
        times = []
        texts = []
        rejected: list[Rejected] = []
        for ts, value in points:
            if not (isfinite(ts) and isfinite(value)):
                rejected.append(Rejected(metric_id, ts, "not a finite number"))
                continue
            t = ts + shift
            if t <= last:
                if file_last < t < last:
                    return None  # out of order: the caller sorts and comes back
                # Not newer than the file's last update, or repeated within the batch.
                rejected.append(_stale(metric_id, t, last, shift))
                continue
            stamp = stamps.get(t)
            if stamp is None:
                stamp = stamps[t] = f"{t:.3f}:"
            # DERIVE accepts integers only ("not a simple signed integer: '100.0'").
            texts.append(stamp + (str(int(value)) if cumulative else repr(float(value))))
            times.append(t)
            last = t
        out.rejected.extend(rejected)
        return _Pending(metric_id, series, times, texts)

    def _send(self, pending: list[_Pending], out: WriteOutcome) -> list[_Pending]:
        """One BATCH round; returns what must be retried after a concurrent writer's update."""
        lines: list[str] = []
        owners: list[tuple[_Pending, int, int]] = []  # line -> its points
        for p in pending:
            line = p.series.command + " " + " ".join(p.texts)
            if len(line) <= MAX_LINE:
                lines.append(line)
                owners.append((p, 0, len(p.texts)))
                continue
            start, size = 0, len(p.series.command)
            for i, text in enumerate(p.texts):
                if size + len(text) + 1 > MAX_LINE and i > start:
                    lines.append(p.series.command + " " + " ".join(p.texts[start:i]))
                    owners.append((p, start, i))
                    start, size = i, len(p.series.command)
                size += len(text) + 1
            lines.append(p.series.command + " " + " ".join(p.texts[start:]))
            owners.append((p, start, len(p.texts)))
        payload = ("\n".join(lines) + "\n").encode()
        logged = self.wal.append(payload) if self.wal is not None else -1
        try:
            errors = self.client.send_batch(payload)
        except StoreUnavailable:
            if self.wal is not None:
                self.wal.retract(logged)
            raise
        retry: list[_Pending] = []
        if not errors:  # the usual answer
            for p in pending:
                p.series.last = p.times[-1]
                out.accepted += len(p.times)
            return retry
        for i, (p, lo, hi) in enumerate(owners):
            series, times = p.series, p.times[lo:hi]
            error = errors.get(i)
            if error is None:
                out.accepted += hi - lo
                series.last = times[-1]
                continue
            shift = series.shift
            match = _STALE.search(error)
            if not match:
                series.last = None  # read the file again next time
                out.rejected.extend(Rejected(p.metric_id, ts - shift, error) for ts in times)
                continue
            # rrdcached queued the values before the refused one and stopped there.
            bad_ts, last = float(match.group(1)), float(match.group(2))
            later = _Pending(p.metric_id, series, [], [])
            for ts, text in zip(times, p.texts[lo:hi], strict=True):
                if ts < bad_ts:
                    out.accepted += 1
                elif ts <= last:
                    out.rejected.append(_stale(p.metric_id, ts, last, shift))
                else:
                    later.times.append(ts)
                    later.texts.append(text)
            series.last = last
            if later.times:
                retry.append(later)
        return retry

    def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless rrdcached answers now."""
        self.client.command("PING")

    def flush(self, metric_id: str) -> None:
        self.client.flush(self.relpath(metric_id))

    def flush_many(self, metric_ids: Iterable[str]) -> None:
        """Make every acknowledged write of these metrics visible to readers, in one batch
        (one round trip instead of one per metric). A metric without a file yet fails alone
        in the batch, which is cheaper than a ``stat`` per metric to leave it out."""
        relpath = self.relpath
        self.client.flush_all_of([relpath(i) for i in metric_ids])

    def read(
        self,
        metric: Metric,
        aggregation: str,
        granularity: int,
        start: float | None,
        stop: float | None,
        policy_of: Callable[[str], ArchivePolicy],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Bucket starts and values (NaN where unknown) of one metric; the caller flushed it.

        The archive is read by :mod:`appliance.storage.rrdread` (numpy, no per-row Python),
        falling back to :func:`rrdread.fetch_with_librrd` (``policy_of`` gives the policy)
        for a layout that reader does not know.
        """
        cf = CF_FOR_AGGREGATION[aggregation]
        try:
            return rrdread.read(self.file(metric.id), cf, granularity, start, stop)
        except FileNotFoundError:
            return np.empty(0), np.empty(0)
        except rrdread.UnsupportedFile:
            policy = policy_of(metric.archive_policy_name)
            rows = next(i.points for i in policy.definition if i.granularity == granularity)
            points = rrdread.fetch_with_librrd(self.file(metric.id), cf, granularity,
                                               rows, start, stop)
            if not points:
                return np.empty(0), np.empty(0)
            times, values = np.array(points, dtype=float).T
            return times, values

    def read_block(self, metrics: Sequence[Metric], aggregation: str, granularity: int,
                   first: int, count: int, policy_of: Callable[[str], ArchivePolicy],
                   ) -> np.ndarray:
        """Many metrics' buckets from ``first`` as one array, a row per metric (NaN where
        unknown); :meth:`read` for an odd layout. Paths joined as text: a ``Path`` each
        cost as much as reading the buckets."""
        return rrdread.read_block(
            [self.file(m.id) for m in metrics],
            CF_FOR_AGGREGATION[aggregation], granularity, first, count,
            lambda r: self.read(metrics[r], aggregation, granularity, first,
                                first + count * granularity, policy_of))

    def last_values(self, metric_ids: Sequence[str]) -> dict[str, float]:
        """The latest value of each metric that has one, after one batched flush.

        Each value is read from the file's header (:func:`rrdfile.last_value`, no lock), so
        thousands of metrics cost milliseconds, not a fetch each. For a cumulative metric
        this is the raw counter.
        """
        # A FLUSH of a file not created yet (no measure so far) fails alone in the batch.
        self.client.batch([f"FLUSH {self.relpath(i)}" for i in metric_ids])
        out = {}
        for metric_id in metric_ids:
            try:
                value = last_value(self.file(metric_id))
            except (OSError, UnsupportedFile):
                continue  # no measure yet
            if value is not None:
                out[metric_id] = value
        return out

    def last_update(self, metric_id: str) -> int | None:
        """RRD time of the file's last update (one step after the newest measure's
        timestamp, see the module docstring); None without a file."""
        path = self.file(metric_id)
        return last_update(path) // 1_000_000 if os.path.isfile(path) else None

    def xport(
        self,
        metric_id: str,
        aggregation: str,
        start: int,
        stop: int,
        step: int,
        reach_back: int,
        cdefs: Sequence[str],
        exports: Sequence[str],
    ) -> tuple[int, list[tuple[float | None, ...]]] | None:
        """``rrdtool xport`` of CDEFs over the metric's series ``v``: ``(step, rows)``.

        The DEF starts ``reach_back`` seconds before ``start`` (PREDICT and TREND read data
        before the window). None when the metric has no file yet.
        """
        path = self.file(metric_id)
        if not os.path.isfile(path):
            return None
        cf = CF_FOR_AGGREGATION[aggregation]
        result = rrdtool.xport(
            *self.daemon_args(),
            "--start", str(start), "--end", str(stop), "--step", str(step),
            f"DEF:v={path}:{DS_NAME}:{cf}:step={step}:start={start - reach_back}",
            *cdefs, *(f"XPORT:{name}" for name in exports),
        )
        return result["meta"]["step"], result["data"]

    def daemon_args(self) -> list[str]:
        """librrd's ``--daemon``: graph and xport then read their data through rrdcached
        (checked with strace: the client never opens the file), instead of locking the file
        themselves, which would make a concurrent rrdcached write of it fail and drop its
        values."""
        return ["--daemon", f"unix:{self.client.socket_path}"]

    def daemon_stats(self) -> dict[str, int]:
        """rrdcached's STATS counters (queue length, updates, flushes...)."""
        return self.client.stats()

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

        For a cumulative metric the values are rates per second (RRD DERIVE). Read with
        :mod:`appliance.storage.rrdread`, which takes no lock: librrd's readers lock the file,
        and an rrdcached write that meets that lock fails and drops the values it carried
        (seen here: acknowledged values lost to a concurrent ``rrdtool.fetch``).
        """
        if not os.path.isfile(self.file(metric.id)):
            return []
        if flush:
            self.flush(metric.id)
        times, values = self.read(metric, aggregation, granularity, start, stop,
                                  lambda _name: policy)
        return [(int(t), float(v)) for t, v in zip(times, values, strict=True) if v == v]

    def delete(self, metric_id: str) -> None:
        self._series.pop(metric_id, None)
        self.client.command(f"FORGET {self.relpath(metric_id)}")
        self.path(metric_id).unlink(missing_ok=True)


def _stale(metric_id: str, rrd_ts: float, rrd_last: float, shift: int) -> Rejected:
    return Rejected(
        metric_id,
        rrd_ts - shift,
        f"not newer than the metric's last measure ({rrd_last - shift:.3f})",
    )
