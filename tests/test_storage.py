"""The store against real RRD files and a real rrdcached."""

from __future__ import annotations

import pytest
import rrdtool

from appliance.model import Kind, PollResult, Resource, Sample
from appliance.storage import graphs
from appliance.storage.policy import BUILTIN_POLICIES
from appliance.store import Store

T0 = 1_700_000_040  # a multiple of 60


def _host() -> Resource:
    return Resource.from_key("host", "host://test", {"host_name": "test"})


def _samples(res, name, kind, points, unit="B"):
    return PollResult(samples=[Sample(res, name, unit, kind, v, ts) for ts, v in points])


def test_archive_policy_layout_read_back_from_file(store):
    res = _host()
    store.write(_samples(res, "hardware.memory.used", Kind.GAUGE, [(T0 + 60, 1.0)]))
    metric = store.index.metrics(name="hardware.memory.used")[0]
    assert metric.archive_policy_name == "medium"
    info = rrdtool.info(str(store.measures.path(metric.id)))
    assert info["step"] == 60
    assert info["ds[v].type"] == "GAUGE"
    rras = {
        (info[f"rra[{i}].cf"], info[f"rra[{i}].pdp_per_row"], info[f"rra[{i}].rows"])
        for i in range(6)
    }
    assert rras == {
        (cf, steps, rows)
        for cf in ("AVERAGE", "MIN", "MAX")
        for steps, rows in ((1, 7 * 1440), (60, 365 * 24))
    }
    assert f"rra[{6}].cf" not in info


def test_written_measures_are_readable_at_once_with_each_aggregation(store):
    res = _host()
    points = [(T0 + 60 * i, float(v)) for i, v in enumerate([10, 20, 30, 40], start=1)]
    result = store.write(_samples(res, "hardware.memory.used", Kind.GAUGE, points))
    assert result.accepted == 4 and result.rejected == []
    metric = store.index.metrics(name="hardware.memory.used")[0]
    policy = BUILTIN_POLICIES["medium"]
    got = store.measures.fetch(metric, policy, "mean", 60, T0, T0 + 300)
    # Each measure is read back in the bucket that starts at its timestamp (Gnocchi's rule).
    assert got == points
    hourly = store.measures.fetch(metric, policy, "max", 3600, None, None)
    assert hourly == []  # an hour bucket is not known until half of it is


def test_stale_and_duplicate_timestamps_are_rejected_and_reported(store):
    res = _host()
    store.write(_samples(res, "m", Kind.GAUGE, [(T0 + 120, 1.0), (T0 + 180, 2.0)]))
    result = store.write(
        _samples(res, "m", Kind.GAUGE, [(T0 + 60, 5.0), (T0 + 180, 6.0), (T0 + 240, 7.0)])
    )
    assert result.accepted == 1
    assert sorted(r.timestamp for r in result.rejected) == [T0 + 60, T0 + 180]
    assert all("not newer" in r.reason for r in result.rejected)
    store.flush_counters()
    assert store.index.counters()["measures_rejected"] == 2


def test_new_metric_accepts_history_and_unsorted_batches(store):
    res = _host()
    points = [(T0 + 60 * i, float(i)) for i in (5, 1, 3, 2, 4)]
    result = store.write(_samples(res, "m", Kind.GAUGE, points))
    assert result.accepted == 5
    metric = store.index.metrics(name="m")[0]
    got = store.measures.fetch(metric, BUILTIN_POLICIES["medium"], "mean", 60, T0, T0 + 400)
    assert [v for _, v in got] == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_cumulative_counter_reset_gives_no_spike(store):
    res = _host()
    counter = [100, 700, 1300, 50, 650]  # reset to ~0 between the 3rd and 4th poll
    points = [(T0 + 60 * i, float(v)) for i, v in enumerate(counter, start=1)]
    store.write(_samples(res, "net.bytes", Kind.CUMULATIVE, points))
    metric = store.index.metrics(name="net.bytes")[0]
    assert rrdtool.info(str(store.measures.path(metric.id)))["ds[v].type"] == "DERIVE"
    got = dict(store.measures.fetch(metric, BUILTIN_POLICIES["medium"], "max", 60, T0, T0 + 400))
    assert max(got.values()) == 10.0  # 600 per 60 s, never a huge negative/positive jump
    assert T0 + 240 not in got  # the interval with the reset is unknown, not a spike
    assert got[T0 + 300] == 10.0


def test_attribute_change_writes_history_revision(store):
    res = Resource.from_key("instance", "vm-1", {"state": "running"})
    store.write(PollResult(resources=[res]))
    store.write(PollResult(resources=[res]))  # unchanged: no revision
    res2 = Resource(res.id, res.type, res.original_resource_id, {"state": "paused"})
    store.write(PollResult(resources=[res2]))
    history = store.index.history(res.id)
    assert [h["attributes"] for h in history] == ['{"state": "running"}', '{"state": "paused"}']
    assert history[0]["revision_end"] == history[1]["revision_start"]


def test_kill_9_of_rrdcached_loses_no_acknowledged_measure(settings, rrdcached, store):
    res = _host()
    acked = []
    for batch in range(20):
        pts = [(T0 + 60 * (batch * 10 + i), float(batch * 10 + i)) for i in range(1, 11)]
        result = store.write(_samples(res, "m", Kind.GAUGE, pts))
        assert result.accepted == 10
        acked.extend(pts)
    rrdcached.kill(9)
    rrdcached.start()
    metric = store.index.metrics(name="m")[0]
    got = store.measures.fetch(
        metric, BUILTIN_POLICIES["medium"], "mean", 60, T0, acked[-1][0] + 1
    )
    assert got == acked


def test_a_long_series_is_split_into_lines_rrdcached_accepts(store):
    # rrdcached resets the connection on a line over 4 KiB: 2000 points make ~60 KiB.
    res = _host()
    points = [(T0 + 60 * i, i + 0.123456789) for i in range(1, 2001)]
    result = store.write(_samples(res, "m", Kind.GAUGE, points))
    assert result.accepted == 2000 and result.rejected == []
    metric = store.index.metrics(name="m")[0]
    got = store.measures.fetch(metric, BUILTIN_POLICIES["medium"], "mean", 60, None, None)
    assert [ts for ts, _ in got] == [ts for ts, _ in points]
    assert [v for _, v in got] == pytest.approx([v for _, v in points])


def test_non_finite_points_are_rejected_one_by_one(store):
    res = _host()
    points = [(T0 + 60, 1.0), (T0 + 120, float("nan")), (T0 + 180, float("inf")), (T0 + 240, 4.0)]
    result = store.write(_samples(res, "m", Kind.GAUGE, points))
    assert result.accepted == 2
    assert [(r.timestamp, r.reason) for r in result.rejected] == [
        (T0 + 120, "not a finite number"), (T0 + 180, "not a finite number")
    ]


def test_a_second_writer_with_a_stale_view_loses_nothing_it_may_write(settings, store):
    """Two processes (API workers) write one metric: each learns the other's last update."""
    res = _host()
    store.write(_samples(res, "m", Kind.GAUGE, [(T0 + 60, 1.0)]))
    other = Store(settings)
    try:
        other.write(_samples(res, "m", Kind.GAUGE, [(T0 + 120, 2.0)]))  # reads the file's last
        store.write(_samples(res, "m", Kind.GAUGE, [(T0 + 180, 3.0)]))
        # ``other`` still believes T0 + 120 is the last one: rrdcached refuses the older point
        # and takes the newer one; the refused one is reported, never dropped silently.
        result = other.write(_samples(res, "m", Kind.GAUGE, [(T0 + 150, 9.0), (T0 + 240, 4.0)]))
    finally:
        other.close()
    assert result.accepted == 1
    assert [r.timestamp for r in result.rejected] == [T0 + 150]
    assert "not newer" in result.rejected[0].reason
    metric = store.index.metrics(name="m")[0]
    got = store.measures.fetch(metric, BUILTIN_POLICIES["medium"], "mean", 60, T0, T0 + 300)
    assert got == [(T0 + 60, 1.0), (T0 + 120, 2.0), (T0 + 180, 3.0), (T0 + 240, 4.0)]


def test_a_graph_reaches_the_newest_bucket_a_step_after_its_measure(store):
    # The store writes a measure one step late (Gnocchi's bucket-start labels): a graph
    # ending at a measure's timestamp is extended by a step to that measure's bucket, never
    # past the file's last update; the newest value drawn is the newest measure's.
    res = _host()
    store.write(_samples(res, "hardware.memory.used", Kind.GAUGE,
                         [(T0 + 60 * i, float(i)) for i in range(1, 6)]))
    metric = store.index.metrics(name="hardware.memory.used")[0]
    policy = BUILTIN_POLICIES["medium"]
    newest = T0 + 300
    store.measures.flush(metric.id)
    assert graphs.reach(store.measures, metric, policy, newest) == newest + 60
    assert graphs.reach(store.measures, metric, policy, newest - 120) == newest - 60
    assert graphs.reach(store.measures, metric, policy, newest + 600) == newest + 600
    look = graphs.Look("SVG", 400, 100)
    drawn = graphs.draw(store.measures, metric, policy, "mean", T0, newest, look, step=60)
    assert (drawn.end, drawn.last) == (newest + 60, 5.0)
    empty = store.index.create_metric("spare", "B", None, "medium")
    blank = graphs.draw(store.measures, empty, policy, "mean", T0, newest, look)
    assert blank.last is None and b"<svg" in blank.image and blank.end == newest


def test_flush_many_makes_values_held_by_rrdcached_readable_in_one_round_trip(store):
    """The read path's FLUSH batch goes without waiting for BATCH's go-ahead: the values
    rrdcached still holds must be in the files after it, a metric without a file must not
    break it, and the connection must stay in step for the next command."""
    import dataclasses

    import numpy as np

    res = _host()
    # Two files written, then one more value each: the last update is still in rrdcached.
    for name in ("hardware.memory.used", "hardware.memory.total"):
        store.write(_samples(res, name, Kind.GAUGE, [(T0 + 60 * i, float(i)) for i in range(5)]))
    metrics = sorted(store.index.metrics(name=None), key=lambda m: m.name)
    metrics = [m for m in metrics if m.name.startswith("hardware.memory")]
    assert len(metrics) == 2
    store.write(_samples(res, "hardware.memory.used", Kind.GAUGE, [(T0 + 300, 42.0)]))
    ghost = dataclasses.replace(metrics[0], id="00000000-0000-4000-8000-000000000000")
    store.flush_many([*metrics, ghost])
    block = store.read_block(metrics, "mean", 60, T0, 6)
    used = next(i for i, m in enumerate(metrics) if m.name == "hardware.memory.used")
    assert block[used].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 42.0]
    assert np.isnan(block[1 - used, 5])
    store.measures.ping()  # answers still in step with commands
