"""The store: the resource index and the measures behind one ``write``.

``write`` is the one sink a poll's result goes to (more sinks, such as an external Gnocchi,
would sit beside it behind the same call). It makes resources and metrics exist (cached, so
a steady poll costs no SQL), then writes every point in one rrdcached batch.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from appliance.config import Settings
from appliance.index import Index
from appliance.model import Metric, PollResult
from appliance.storage.daemon import wal_retention
from appliance.storage.errors import DiskFull, StoreUnavailable, is_disk_full
from appliance.storage.measures import Measures, Rejected, WriteOutcome
from appliance.storage.policy import make_policy
from appliance.storage.rrdcached import RrdcachedClient
from appliance.storage.wal import WriteAheadLog

COUNTER_FLUSH_SECONDS = 5.0


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

    def close(self) -> None:
        self.flush_counters()
        self.client.close()
        self.index.close()

    def write(self, result: PollResult) -> WriteResult:
        """Persist a poll: resources (with history), metrics, then measures.

        Raises :class:`DiskFull` or :class:`StoreUnavailable` (both ``OSError``) when the
        data dir has no room or rrdcached is unreachable; nothing of the poll is then
        acknowledged, and an agent keeps it for the next try.
        """
        with disk_full_named("write the resource index"):
            return self._write(result)

    def _write(self, result: PollResult) -> WriteResult:
        now = time.time()
        resources = {s.resource.id: s.resource for s in result.samples}
        resources.update((r.id, r) for r in result.resources)
        written = self.index.ensure_resources(resources.values(), now)
        # Points per (resource, meter): a poll has one per key, pushed history many.
        points: dict[tuple[str, str], list[tuple[float, float]]] = {}
        wanted = []
        for s in result.samples:
            key = (s.resource.id, s.metric_name)
            pts = points.get(key)
            if pts is None:
                points[key] = [(s.timestamp, s.value)]
                wanted.append((key[0], key[1], s.unit, s.kind))
            else:
                pts.append((s.timestamp, s.value))
        metrics = self.index.ensure_metrics(wanted)
        outcome = self.write_measures((metrics[k], pts) for k, pts in points.items())
        return WriteResult(outcome.accepted, outcome.rejected, written, metrics)

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
            self.client.command("PING")
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

    def flush_counters(self) -> None:
        """Move this process's counts into the index (shared with the API and status page)."""
        with disk_full_named("write the resource index"):
            self.index.add_counters(self._counts)
        self._counts.clear()
        self._counted_at = time.monotonic()
