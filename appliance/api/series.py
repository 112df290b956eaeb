"""Measures of one or many metrics, read for the API: flushed in one batch, read as arrays.

All metrics are flushed from rrdcached in one batch (one round trip instead of one per
metric); each file's archive is then read by :mod:`appliance.api.rrdread` (numpy, no
per-row Python), falling back to ``rrdtool.fetch`` for a layout that reader does not know.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from appliance.aggregation import Series
from appliance.api import rrdread
from appliance.model import Metric
from appliance.storage.policy import CF_FOR_AGGREGATION
from appliance.store import Store


def flush_many(store: Store, metrics: Sequence[Metric]) -> None:
    """Make every acknowledged write of these metrics visible to readers, in one batch."""
    commands = [
        f"FLUSH {store.measures.relpath(m.id)}" for m in metrics if store.measures.exists(m.id)
    ]
    store.client.batch(commands)


def read(
    store: Store,
    metric: Metric,
    aggregation: str,
    granularity: int,
    start: float | None,
    stop: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Bucket starts and values (NaN where unknown) of one metric; the caller flushed it."""
    path = store.measures.path(metric.id)
    try:
        return rrdread.read(str(path), CF_FOR_AGGREGATION[aggregation], granularity, start,
                            stop)
    except FileNotFoundError:
        return np.empty(0), np.empty(0)
    except rrdread.UnsupportedFile:
        policy = store.index.policy(metric.archive_policy_name)
        points = store.measures.fetch(metric, policy, aggregation, granularity, start, stop,
                                      flush=False)
        if not points:
            return np.empty(0), np.empty(0)
        times, values = np.array(points, dtype=float).T
        return times, values


def fetch(
    store: Store,
    wanted: Sequence[tuple[Metric, str, tuple[str, str]]],
    granularity: int,
    start: float | None,
    stop: float | None,
) -> list[Series]:
    """One :class:`Series` per ``(metric, aggregation, key)`` at one granularity."""
    return [
        Series(key, float(granularity), *read(store, metric, aggregation, granularity, start,
                                               stop))
        for metric, aggregation, key in wanted
    ]
