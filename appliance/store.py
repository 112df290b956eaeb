"""The store: the resource index and the measures behind one ``write``.

``write`` is the one sink a poll's result goes to (more sinks, such as an external Gnocchi,
would sit beside it behind the same call). It makes resources and metrics exist (cached, so
a steady poll costs no SQL), then writes the points in one rrdcached batch per part of
:data:`WRITE_PART` samples.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from appliance.aggregation import Series
from appliance.config import Settings
from appliance.index import Index
from appliance.model import Metric, PollResult, Sample, make_policy
from appliance.storage.daemon import wal_retention
from appliance.storage.errors import DiskFull, StoreUnavailable, is_disk_full
from appliance.storage.measures import Measures, Rejected, WriteOutcome
from appliance.storage.rrdcached import RrdcachedClient
from appliance.storage.wal import WriteAheadLog

COUNTER_FLUSH_SECONDS = 5.0
#: Samples a poll's write handles at a time. A write's temporaries (index rows, formatted
#: points, the rrdcached batch) live as long as one part, so the peak of a large poll is
#: bounded by this, and so is what Python's allocator keeps of it afterwards: it returns an
#: arena only once every object in it is freed, and the long-lived caches a first write
#: fills sit among those temporaries. Measured on the SNMP agent (20 devices, 4,420
#: metrics): 19.4 MB of its own memory in one part, 15.8 in parts of 500.
WRITE_PART = 500


@dataclass(slots=True)
class WriteResult:
    """What a write did: the caller learns of every rejected measure."""

    accepted: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    resources_written: int = 0
    metrics: dict[tuple[str, str], Metric] = field(default_factory=dict)


@contextmanager
def disk_full_named(what: str) -> Iterator[None]:
    """Turn SQLite's "database or disk is full" into :class:`DiskFull` (SQLite has already
    rolled the transaction back, so the index stays whole)."""
    try:
        yield
    except sqlite3.Error as exc:
        if is_disk_full(exc):
            raise DiskFull(what, exc) from exc
        raise


def configured_policies(settings: Settings):
    return {
        name: make_policy(
            name,
            [(i.granularity, i.points or (i.timespan // i.granularity)) for i in p.definition],
            p.aggregation_methods,
            p.back_window,
        )
        for name, p in settings.archive_policies.items()
    }


class Store:
    """Index + measures of one data dir, for one process."""

    def __init__(self, settings: Settings, seed: bool = True):
        self.settings = settings
        for d in (settings.data_dir, settings.rrd_dir, settings.run_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.index = Index(settings.index_path)
        if seed:
            self.index.seed(
                configured_policies(settings),
                [
                    (r.name or f"rule-{r.pattern}", r.pattern, r.policy)
                    for r in settings.archive_policy_rules
                ],
            )
        retention = wal_retention(settings)
        self.client = RrdcachedClient(settings.rrdcached_socket)
        self._counts: Counter[str] = Counter()
        self._counted_at = time.monotonic()
        self.measures = Measures(
            settings.rrd_dir, self.client, WriteAheadLog(settings.data_dir / "wal", retention)
        )
        # The poll being written in parts and where its next part starts, so that the retry
        # of a write that failed part-way (the agent keeps the same result) goes on from
        # there instead of writing the acknowledged parts again.
        self._resume: tuple[PollResult, int] | None = None

    def close(self) -> None:
        self.flush_counters()
        self.client.close()
        self.index.close()

    def write(self, result: PollResult) -> WriteResult:
        """Persist a poll: resources (with history), metrics, then measures.

        Raises :class:`DiskFull` or :class:`StoreUnavailable` (both ``OSError``) when the
        data dir has no room or rrdcached is unreachable; the parts written before are then
        acknowledged and the rest is not, and an agent keeps the poll for the next try, which
        goes on from the part that failed.
        """
        with disk_full_named("write the resource index"):
            return self._write(result)

    def _write(self, result: PollResult) -> WriteResult:
        now = time.time()
        resources = {s.resource.id: s.resource for s in result.samples}
        resources.update((r.id, r) for r in result.resources)
        out = WriteResult(resources_written=self.index.ensure_resources(resources.values(), now))
        del resources
        samples = result.samples
        first = self._resume[1] if self._resume and self._resume[0] is result else 0
        for start in range(first, len(samples), WRITE_PART):
            self._resume = (result, start)
            part = self._write_samples(samples[start : start + WRITE_PART])
            out.accepted += part.accepted
            out.rejected += part.rejected
            out.metrics.update(part.metrics)
        self._resume = None
        return out

    def _write_samples(self, samples: Sequence[Sample]) -> WriteResult:
        """Metrics made to exist, then their points written in one rrdcached batch."""
        # Points per (resource, meter): a poll has one per key, pushed history many.
        points: dict[tuple[str, str], list[tuple[float, float]]] = {}
        wanted = []
        for s in samples:
            key = (s.resource.id, s.metric_name)
            pts = points.get(key)
            if pts is None:
                points[key] = [(s.timestamp, s.value)]
                wanted.append((key[0], key[1], s.unit, s.kind))
            else:
                pts.append((s.timestamp, s.value))
        metrics = self.index.ensure_metrics(wanted)
        outcome = self.write_measures((metrics[k], pts) for k, pts in points.items())
        return WriteResult(outcome.accepted, outcome.rejected, 0, metrics)

    def write_measures(
        self, items: Iterable[tuple[Metric, Sequence[tuple[float, float]]]]
    ) -> WriteOutcome:
        """Write points to known metrics (the API's measures endpoints come in here)."""
        outcome = self.measures.write(items, self.index.policy)
        self._counts["measures_accepted"] += outcome.accepted
        self._counts["measures_rejected"] += len(outcome.rejected)
        self._counts["write_batches"] += 1
        if outcome.rejected or time.monotonic() - self._counted_at > COUNTER_FLUSH_SECONDS:
            self.flush_counters()
        return outcome

    def health(self) -> dict:
        """Whether writes can be acknowledged now: rrdcached's answer and the disk's room."""
        try:
            self.measures.ping()
            rrdcached, error = "up", None
        except StoreUnavailable as exc:
            rrdcached, error = "unreachable", str(exc)
        usage = shutil.disk_usage(self.settings.data_dir)
        return {
            "rrdcached": rrdcached,
            "error": error,
            "disk_free_bytes": usage.free,
            "disk_total_bytes": usage.total,
        }

    # --- reads: every caller asks by metric; only the storage package touches files -------

    def flush_many(self, metrics: Iterable[Metric]) -> None:
        """Make every acknowledged write of these metrics readable, in one rrdcached batch."""
        self.measures.flush_many(m.id for m in metrics)

    def read(
        self,
        metric: Metric,
        aggregation: str,
        granularity: int,
        start: float | None,
        stop: float | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Bucket starts and values (NaN where unknown) of one metric; the caller flushed it."""
        return self.measures.read(metric, aggregation, granularity, start, stop,
                                  self.index.policy)

    def read_block(
        self,
        metrics: Sequence[Metric],
        aggregation: str,
        granularity: int,
        first: int,
        count: int,
    ) -> np.ndarray:
        """``count`` buckets from ``first`` (a multiple of ``granularity``) of many metrics as
        one ``len(metrics) x count`` array, NaN where unknown; the caller flushed them.

        One call per selection rather than :meth:`read` per metric: a dashboard panel over
        100 series spent most of its time in per-file calls and arrays.
        """
        return self.measures.read_block(metrics, aggregation, granularity, first, count,
                                        self.index.policy)

    def read_series(
        self,
        wanted: Sequence[tuple[Metric, str, tuple[str, str]]],
        granularity: int,
        start: float | None,
        stop: float | None,
    ) -> list[Series]:
        """One :class:`Series` per ``(metric, aggregation, key)`` at one granularity."""
        return [
            Series(key, float(granularity),
                   *self.read(metric, aggregation, granularity, start, stop))
            for metric, aggregation, key in wanted
        ]

    def newest_measures(self, metrics: Iterable[Metric]) -> dict[str, float]:
        """The timestamp of each metric's newest measure, from its file's header (no lock);
        metrics without a file are left out. The caller flushed them."""
        out = {}
        for m in metrics:
            last = self.measures.last_update(m.id)
            if last is not None:  # written one step after the measure (storage.measures)
                out[m.id] = float(last - self.index.policy(m.archive_policy_name).step)
        return out

    def rrdcached_stats(self) -> dict[str, int]:
        return self.measures.daemon_stats()

    # --- deletions: the row and the file go together ---------------------------------------

    def delete_metric(self, metric_id: str) -> None:
        """Delete a metric's row, then its file (NotFound if there is no such metric)."""
        self.index.delete_metric(metric_id)
        self.measures.delete(metric_id)

    def delete_resource(self, resource_id: str) -> list[str]:
        """Delete a resource with its metrics' rows and files; returns the metric ids."""
        ids = self.index.delete_resource(resource_id)
        for metric_id in ids:
            self.measures.delete(metric_id)
        return ids

    def flush_counters(self) -> None:
        """Move this process's counts into the index (shared with the API and status page)."""
        with disk_full_named("write the resource index"):
            self.index.add_counters(self._counts)
        self._counts.clear()
        self._counted_at = time.monotonic()
