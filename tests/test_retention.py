"""Changing an archive policy in use: files rebuilt with their data, writers never lose a value.

Real RRD files and a real rrdcached; the crash is a real SIGKILL of a rebuilding process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import rrdtool

from appliance.index import rebuilds
from appliance.retention import rebuild_pending
from appliance.storage.policy import make_policy
from appliance.store import Store
from tests.conftest import wait_for

WEEK = 7 * 86400


def week_of_minutes(store: Store, name: str, metrics: int = 1):
    """``metrics`` metrics on a 1 min x 7 d policy, each with a week of 1 min points."""
    store.index.create_policy(make_policy(name, [(60, 7 * 1440)], ["mean"]))
    end = int(time.time()) // 60 * 60 - 120
    times = range(end - WEEK + 60, end + 60, 60)
    made = []
    for i in range(metrics):
        m = store.index.create_metric(f"m{i}", "W", None, name)
        outcome = store.write_measures([(m, [(t, float(i * 100_000 + (t // 60) % 10_000))
                                             for t in times])])
        assert not outcome.rejected
        made.append(m)
    return made, end


def same(got, expected) -> bool:
    """The same timestamps and values; rrdtool's prefill recomputes each value through its
    consolidation arithmetic, which can move the last bit (3845.0 -> 3844.9999999999995)."""
    return [t for t, _ in got] == [t for t, _ in expected] and [v for _, v in got] == \
        pytest.approx([v for _, v in expected], rel=1e-12)


def read(store: Store, metric, aggregation: str, granularity: int):
    policy = store.index.policy(metric.archive_policy_name)
    return store.measures.fetch(metric, policy, aggregation, granularity, None, None)


def test_widening_a_policy_keeps_every_point_and_adds_the_new_ones(store):
    (metric,), end = week_of_minutes(store, "weekly")
    before = read(store, metric, "mean", 60)
    assert len(before) == 7 * 1440

    wider = make_policy("weekly", [(60, 14 * 1440), (3600, 365 * 24)], ["mean", "max"])
    assert store.index.change_policy(wider) == 1
    assert rebuilds.progress(store.index) == {"weekly": 1}
    assert rebuild_pending(store) == 1
    assert rebuilds.progress(store.index) == {}

    info = rrdtool.info(str(store.measures.path(metric.id)))
    rras = {(info[f"rra[{i}].cf"], info[f"rra[{i}].pdp_per_row"], info[f"rra[{i}].rows"])
            for i in range(4)}
    assert rras == {("AVERAGE", 1, 14 * 1440), ("AVERAGE", 60, 365 * 24),
                    ("MAX", 1, 14 * 1440), ("MAX", 60, 365 * 24)}
    assert same(read(store, metric, "mean", 60), before)  # the same points
    hourly = read(store, metric, "mean", 3600)
    assert len(hourly) >= 24 * 7 - 1
    # Each hour is the mean of its minutes, copied from the old file's 1 min archive.
    by_minute = dict(before)
    ts, value = hourly[len(hourly) // 2]
    assert value == pytest.approx(sum(by_minute[t] for t in range(ts, ts + 3600, 60)) / 60)
    assert same(read(store, metric, "max", 60), before)  # a new method, filled from the mean
    # The file keeps its last update: the next measure is accepted.
    assert not store.write_measures([(metric, [(end + 60, 1.0)])]).rejected
    assert read(store, metric, "mean", 60)[-1] == (end + 60, 1.0)
    # Nothing left beside the file.
    assert sorted(p.name for p in store.measures.path(metric.id).parent.iterdir()) == [
        f"{metric.id}.rrd"]


def test_writes_and_reads_during_a_rebuild_lose_nothing(store, settings):
    metrics, end = week_of_minutes(store, "busy", metrics=60)
    store.index.change_policy(make_policy("busy", [(60, 8 * 1440)], ["mean"]))
    stop = threading.Event()
    written: dict[str, list[tuple[int, float]]] = {m.id: [] for m in metrics}

    errors: list[BaseException] = []

    # Another process's store would do the same: its own rrdcached connection, which has
    # written each file once before the rebuild starts.
    other = Store(settings, seed=False)
    t = end + 60
    for m in metrics:
        assert not other.write_measures([(m, [(t, float(t % 977))])]).rejected
        written[m.id].append((t, float(t % 977)))

    def writer() -> None:
        t = end + 60
        try:
            while not stop.is_set():
                t += 60
                for m in metrics:
                    outcome = other.write_measures([(m, [(t, float(t % 977))])])
                    assert not outcome.rejected, outcome.rejected
                    written[m.id].append((t, float(t % 977)))
                    other.measures.flush(m.id)  # a reader's flush-on-read, mid-rebuild
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
        finally:
            other.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert rebuild_pending(store) == 60
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert sum(map(len, written.values())) > 60
    for m in metrics:
        got = dict(read(store, m, "mean", 60))
        missing = [(t, v, got.get(t)) for t, v in written[m.id]
                   if got.get(t) != pytest.approx(v, rel=1e-12)]
        assert not missing, (m.id, missing, len(written[m.id]))
        info = rrdtool.info(str(store.measures.path(m.id)))
        assert info["rra[0].rows"] == 8 * 1440


def test_a_value_that_reaches_the_old_file_after_the_rename_is_kept(store, settings):
    """A write that opened the old file just before the rename lands in the old inode; the
    next value lands in the new file, which spreads it over the stray value's slot too. The
    rebuild sees the old inode changed after the rename and builds the file again with the
    old inode as its first source, so both values are kept."""
    (metric,), end = week_of_minutes(store, "stray")
    before = read(store, metric, "mean", 60)
    store.index.change_policy(make_policy("stray", [(60, 8 * 1440)], ["mean"]))
    path = store.measures.path(metric.id)
    old = path.with_name(path.name + ".prev")
    stray, following = end + 60, end + 120
    other = Store(settings, seed=False)
    errors: list[BaseException] = []

    def late_writer() -> None:
        try:
            wait_for(lambda: old.exists() and old.stat().st_ino != path.stat().st_ino,
                     timeout=60, interval=0.001, what="the new file renamed over the old")
            # What rrdcached's write does when it opened the file just before the rename
            # (an RRD file's times are a step later than the store's).
            rrdtool.update(str(old), f"{stray + 60}:1.5")
            assert not other.write_measures([(metric, [(following, 2.5)])]).rejected
            other.measures.flush(metric.id)  # into the new file
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    thread = threading.Thread(target=late_writer)
    thread.start()
    try:
        assert rebuild_pending(store) == 1
    finally:
        thread.join()
        other.close()
    assert errors == []
    got = read(store, metric, "mean", 60)
    assert got[-2:] == [(stray, 1.5), (following, 2.5)]
    assert same(got, [*before, (stray, 1.5), (following, 2.5)])
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # nothing left over


CRASHING = """
import sys
from appliance import config
from appliance.retention import rebuild_pending
from appliance.store import Store
store = Store(config.parse({"data_dir": sys.argv[1]}, "<test>"), seed=False)
rebuild_pending(store)
"""


def test_a_rebuild_killed_midway_resumes_and_loses_nothing(store, settings):
    metrics, _ = week_of_minutes(store, "crashy", metrics=60)
    before = {m.id: read(store, m, "mean", 60) for m in metrics}
    store.index.change_policy(make_policy("crashy", [(60, 9 * 1440)], ["mean"]))
    proc = subprocess.Popen([sys.executable, "-c", CRASHING, str(settings.data_dir)])
    wait_for(lambda: rebuilds.progress(store.index).get("crashy", 0) < 55, timeout=60,
             interval=0.01, what="a few files rebuilt")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    left = rebuilds.progress(store.index)["crashy"]
    assert 0 < left < 60
    # Every file is whole, in the old layout or the new one, with all its points.
    for m in metrics:
        assert rrdtool.info(str(store.measures.path(m.id)))["rra[0].rows"] in (7 * 1440,
                                                                               9 * 1440)
    assert rebuild_pending(store) == left  # the next start finishes the work
    for m in metrics:
        assert same(read(store, m, "mean", 60), before[m.id])
        assert rrdtool.info(str(store.measures.path(m.id)))["rra[0].rows"] == 9 * 1440


def test_gnocchi_archive_policy_update_on_a_running_appliance(appliance_factory):
    import json

    import requests

    app = appliance_factory({"pollsters": {"host": {"enabled": False}}})
    gnocchi = [str(Path(sys.executable).with_name("gnocchi")), "--endpoint", app.url,
               f"--user={app.token}"]

    def cli(*args: str) -> dict | list:
        proc = subprocess.run([*gnocchi, *args, "-f", "json"], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, (args, proc.stderr)
        return json.loads(proc.stdout)

    cli("archive-policy", "create", "-d", "granularity:1m,timespan:1d", "-m", "mean", "grow")
    mid = cli("metric", "create", "-a", "grow", "grown")["id"]
    end = int(time.time()) // 60 * 60 - 60
    points = [{"timestamp": t, "value": float(t % 1000)} for t in range(end - 20 * 3600, end, 60)]
    requests.post(f"{app.url}/v1/metric/{mid}/measures", json=points, headers=app.headers,
                  timeout=30).raise_for_status()
    before = cli("measures", "show", "--granularity", "60", mid)

    updated = cli("archive-policy", "update", "-d", "granularity:1m,timespan:2d",
                  "-d", "granularity:1h,timespan:30d", "grow")
    assert [d["granularity"] for d in updated["definition"]] == ["0:01:00", "1:00:00"]

    def rebuilt() -> bool:
        shown = requests.get(f"{app.url}/v1/archive_policy/grow", headers=app.headers,
                             timeout=5).json()
        return "rebuilding_metrics" not in shown

    wait_for(rebuilt, timeout=30, what="the metric's file in the new layout")
    status = requests.get(f"{app.url}/v1/status", headers=app.headers, timeout=5).json()
    assert status["appliance"]["policy_rebuilds"] == {}
    after = cli("measures", "show", "--granularity", "60", mid)
    assert same([(p["timestamp"], p["value"]) for p in after],
                [(p["timestamp"], p["value"]) for p in before])
    hourly = cli("measures", "show", "--granularity", "3600", mid)
    assert len(hourly) >= 19

    # The files' step (the finest granularity) stays while metrics use the policy.
    proc = subprocess.run([*gnocchi, "archive-policy", "update", "-d",
                           "granularity:5m,timespan:2d", "grow"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0 and "finest granularity" in proc.stderr


def test_a_config_change_is_rebuilt_and_an_api_change_survives_a_restart(store, settings):
    from appliance import config

    def with_custom(definition: list[dict]) -> config.Settings:
        return config.parse({"data_dir": str(settings.data_dir), "archive_policies": {
            "custom": {"definition": definition, "aggregation_methods": ["mean"]}}}, "<test>")

    day = [{"granularity": 60, "timespan": 86400}]
    first = Store(with_custom(day))
    metric = first.index.create_metric("c", "W", None, "custom")
    end = int(time.time()) // 60 * 60 - 60
    assert not first.write_measures([(metric, [(t, 1.0) for t in range(end - 3600, end, 60)])
                                     ]).rejected
    before = read(first, metric, "mean", 60)
    first.close()
    # The same config again changes nothing; a longer one queues the file.
    Store(with_custom(day)).close()
    assert rebuilds.progress(store.index) == {}
    wider = Store(with_custom([*day, {"granularity": 3600, "timespan": 30 * 86400}]))
    assert rebuilds.progress(wider.index) == {"custom": 1}
    assert rebuild_pending(wider) == 1
    assert same(read(wider, metric, "mean", 60), before)
    assert rrdtool.info(str(wider.measures.path(metric.id)))["rra[1].pdp_per_row"] == 60
    wider.close()

    # A built-in policy changed through the API keeps its change across a restart.
    longer = make_policy("low", [(300, 60 * 288)], ["mean", "min", "max"])
    store.index.change_policy(longer)
    restarted = Store(settings)
    assert restarted.index.policy("low").definition == longer.definition
    restarted.close()


def test_an_api_worker_resumes_a_queued_rebuild_as_it_boots(appliance_factory):
    """A change queued while nothing ran (what a crash mid-rebuild leaves) is finished once
    the appliance starts again, by its API: its master asks the index before forking each
    worker (``resume_needed``), and a worker forked with work waiting does it."""
    import requests

    from appliance import config
    from appliance.index import Index
    from appliance.retention import resume_needed
    from appliance.storage.measures import Measures

    app = appliance_factory({"pollsters": {"host": {"enabled": False}}})
    h = app.headers
    requests.post(f"{app.url}/v1/archive_policy", headers=h, timeout=10, json={
        "name": "later", "aggregation_methods": ["mean"],
        "definition": [{"granularity": 60, "timespan": 86400}]}).raise_for_status()
    mid = requests.post(f"{app.url}/v1/metric", json={"archive_policy_name": "later"},
                        headers=h, timeout=10).json()["id"]
    end = int(time.time()) // 60 * 60 - 60
    points = [{"timestamp": t, "value": float(t % 97)} for t in range(end - 3600, end, 60)]
    requests.post(f"{app.url}/v1/metric/{mid}/measures", json=points, headers=h,
                  timeout=10).raise_for_status()
    before = requests.get(f"{app.url}/v1/metric/{mid}/measures", headers=h, timeout=10).json()
    assert len(before) == 60
    app.stop()

    settings = config.load(app.config_path, app.data_dir)
    assert not resume_needed(settings)
    index = Index(settings.index_path)
    index.change_policy(make_policy("later", [(60, 2 * 1440)], ["mean"]))
    index.close()
    assert resume_needed(settings)

    app.start()
    wait_for(lambda: not resume_needed(settings), timeout=60, what="the queued rebuild done")
    rrd = settings.rrd_dir / Measures.relpath(mid)
    assert rrdtool.info(str(rrd))["rra[0].rows"] == 2 * 1440
    after = requests.get(f"{app.url}/v1/metric/{mid}/measures", headers=h, timeout=10).json()
    assert same([(t, v) for t, _g, v in after], [(t, v) for t, _g, v in before])
