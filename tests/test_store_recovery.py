"""The store across restarts, crashes, outages and a full disk (real rrdcached and files).

The whole appliance's life (supervisord, gunicorn, agents) is in test_lifecycle.py; these
tests pin down the store's own promises: a replay is idempotent and never fatal, an outage
and a full disk are named, and nothing acknowledged is lost.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
import rrdtool

from appliance import config
from appliance.model import Kind, PollResult, Resource, Sample
from appliance.storage.daemon import prepare
from appliance.storage.errors import DiskFull, StoreUnavailable
from appliance.storage.policy import BUILTIN_POLICIES
from appliance.store import WRITE_PART, Store
from tests.conftest import Rrdcached

T0 = 1_700_000_040  # a multiple of 60


def _poll(name: str, points, resource: str = "host://test") -> PollResult:
    res = Resource.from_key("host", resource, {"host_name": "test"})
    return PollResult(samples=[Sample(res, name, "B", Kind.GAUGE, v, ts) for ts, v in points])


def _read(store: Store, name: str) -> list[tuple[int, float]]:
    metric = store.index.metrics(name=name)[0]
    return store.measures.fetch(metric, BUILTIN_POLICIES["medium"], "mean", 60, T0, None)


def _buckets(points):
    """What a 60 s mean reads back for one point per bucket: RRD weighs by time, so a point
    a fraction of a second into its bucket lends that fraction of itself to the next one."""
    return [(int(ts) // 60 * 60, pytest.approx(v, rel=0.01)) for ts, v in points]


def test_restart_after_a_clean_stop_replays_nothing_twice(settings, rrdcached, store):
    # Fractional timestamps: rrdtool.last() says whole seconds, the file holds microseconds.
    points = [(T0 + 60 * i + 0.25 + i / 1000, float(i)) for i in range(1, 31)]
    for p in points:
        assert store.write(_poll("m", [p])).accepted == 1
    rrdcached.stop()  # SIGTERM: rrdcached writes everything out (-F)
    report = prepare(settings)
    assert report.values == 0 and report.held == len(points)
    assert report.failed == [] and report.set_aside == [] and report.torn == 0
    rrdcached.start()
    assert _read(store, "m") == _buckets(points)


def test_kill_9_twice_under_writes_loses_nothing(settings, rrdcached, store):
    acked = []
    for round_ in range(3):
        for i in range(1, 21):
            n = round_ * 20 + i
            point = (T0 + 60 * n + 0.5, float(n))
            assert store.write(_poll("m", [point])).accepted == 1
            acked.append(point)
        rrdcached.kill(9)
        rrdcached.start()  # replays; the second and third replays meet values already held
    assert _read(store, "m") == _buckets(acked)


def test_replay_sets_aside_what_it_cannot_read_and_goes_on(settings, rrdcached, store):
    points = [(T0 + 60 * i + 0.125, float(i)) for i in range(1, 11)]
    for p in points:
        store.write(_poll("m", [p]))
    rrdcached.kill(9)
    wal = settings.data_dir / "wal"
    segment = sorted(wal.glob("*.wal"))[0]
    with open(segment, "ab") as f:  # a writer killed in the middle of a line
        f.write(b"UPDATE ab/not-finished")
    (wal / "0-1.000000.wal").write_bytes(b"UPDATE \xff\xfe garbage\n")
    (wal / "0-2.000000.wal").write_text(
        "UPDATE ../../etc/passwd 1:1\nUPDATE ab/x.rrd 2:2\nNOT-A-COMMAND\n"
    )
    report = prepare(settings)
    assert report.values == len(points)
    assert report.torn == 1
    assert report.set_aside == ["0-1.000000.wal"]
    assert (wal / "set-aside" / "0-1.000000.wal").exists()
    assert report.malformed == 2  # neither path names a metric file
    assert "replayed 10 values into 1 files" in report.summary()
    rrdcached.start()
    assert _read(store, "m") == _buckets(points)


def test_a_file_that_refuses_its_values_does_not_stop_the_others(settings, rrdcached, store):
    for i in range(1, 6):
        store.write(_poll("a", [(T0 + 60 * i + 0.5, float(i))]))
        store.write(_poll("b", [(T0 + 60 * i + 0.5, float(i))]))
    rrdcached.kill(9)
    broken = store.measures.path(store.index.metrics(name="a")[0].id)
    broken.write_bytes(broken.read_bytes()[:100])  # a damaged file
    report = prepare(settings)
    assert report.failed == [broken.name]
    assert report.values == 5
    rrdcached.start()
    assert _read(store, "b") == _buckets([(T0 + 60 * i, float(i)) for i in range(1, 6)])


def test_outage_is_named_and_the_write_is_not_acknowledged(settings, rrdcached, store):
    store.write(_poll("m", [(T0 + 60, 1.0)]))
    rrdcached.stop()
    with pytest.raises(StoreUnavailable):
        store.write(_poll("m", [(T0 + 120, 2.0)]))
    assert store.health()["rrdcached"] == "unreachable"
    rrdcached.start()
    assert store.health()["rrdcached"] == "up"
    # The refused write is retried as an agent's backlog would be: nothing is lost.
    assert store.write(_poll("m", [(T0 + 120, 2.0)])).accepted == 1
    assert _read(store, "m") == [(T0 + 60, 1.0), (T0 + 120, 2.0)]


def test_a_large_poll_is_written_in_parts_and_a_retry_goes_on_where_it_failed(
        settings, rrdcached, store):
    # A poll is written WRITE_PART samples at a time, so a write's temporaries (and what the
    # allocator keeps of them) are bounded by a part, not by the poll's size.
    n = 2 * WRITE_PART + 7
    res = Resource.from_key("host", "host://big", {"host_name": "big"})
    poll = PollResult(samples=[Sample(res, f"m{i}", "B", Kind.GAUGE, float(i), T0 + 60.5)
                               for i in range(n)])
    batches, send = [], store.client.send_batch

    def outage_before_the_second_part(payload: bytes):
        batches.append(payload.count(b"\n"))
        if len(batches) == 2:
            rrdcached.stop()
        return send(payload)

    store.client.send_batch = outage_before_the_second_part
    with pytest.raises(StoreUnavailable):
        store.write(poll)
    assert batches == [WRITE_PART, WRITE_PART]  # the first part acknowledged, not the second
    rrdcached.start()
    # The agent's retry of the same poll writes the parts that were not acknowledged, and
    # none twice (a second copy would be refused as not newer than the file's last point).
    again = store.write(poll)
    assert again.accepted == n - WRITE_PART and again.rejected == []
    assert batches[2:] == [WRITE_PART, 7]
    for i in (0, WRITE_PART - 1, WRITE_PART, n - 1):
        assert _read(store, f"m{i}") == _buckets([(T0 + 60.5, float(i))])
    # A different poll starts from its first sample.
    later = PollResult(samples=[Sample(res, "m0", "B", Kind.GAUGE, 5.0, T0 + 120.5)])
    assert store.write(later).accepted == 1


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 24 MiB filesystem (tmpfs) that the test can fill; CI runs as root."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Fill the filesystem of ``directory`` to the last byte; return the filler file."""
    filler = directory / "filler"
    with open(filler, "wb") as f:
        chunk = b"\0" * (1 << 20)
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError:
            pass
    for size in (4096, 1):  # the last partial blocks too
        try:
            with open(filler, "ab") as f:
                while True:
                    f.write(b"\0" * size)
                    f.flush()
        except OSError:
            pass
    return filler


def test_full_disk_fails_cleanly_and_resumes_when_space_returns(small_disk):
    settings = config.parse(
        {"data_dir": str(small_disk / "data"),
         "archive_policy_rules": [{"pattern": "*", "policy": "low"}]},
        "<test>",
    )
    daemon = Rrdcached(settings)
    daemon.start()
    store = Store(settings)
    try:
        assert store.write(_poll("old", [(T0 + 300, 1.0)])).accepted == 1
        filler = fill(small_disk)

        # A new metric's file cannot be created: named, and no half-built file remains.
        with pytest.raises(DiskFull) as created:
            for i in range(50):  # the index may still have room in its pages at first
                store.write(_poll(f"new{i}", [(T0 + 300, 1.0)], resource=f"host://n{i}"))
        assert "disk full" in str(created.value)
        assert not list(settings.rrd_dir.glob("*/.*.tmp"))
        # An existing metric's value cannot be logged: named, and the log is not torn.
        sizes = {p: p.stat().st_size for p in (settings.data_dir / "wal").glob("*.wal")}
        with pytest.raises(DiskFull):
            for i in range(2, 2000):
                store.write(_poll("old", [(T0 + 300 * i, float(i))]))
        for path, size in sizes.items():
            assert path.read_bytes().endswith(b"\n") or path.stat().st_size == size

        filler.unlink()
        acked = store.write(_poll("old", [(T0 + 300 * 3000, 5.0)]))
        assert acked.accepted == 1
        store.write(_poll("new-after", [(T0 + 300, 1.0)], resource="host://after"))
        for rrd in settings.rrd_dir.glob("*/*.rrd"):
            assert rrdtool.info(str(rrd))["step"] == 300  # every file whole and readable
        with sqlite3.connect(settings.index_path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        store.close()
        daemon.stop()
    # And a restart replays what was acknowledged, whatever the log saw meanwhile.
    report = prepare(settings)
    assert report.failed == [] and report.set_aside == []
    os.sync()


def test_reads_take_no_lock_that_would_make_rrdcached_drop_a_write(settings, rrdcached, store):
    """librrd's readers lock the file, and an rrdcached write that meets a reader's lock
    fails and drops its values. The store's reads must work while someone else holds the
    file's lock, which proves they take none."""
    import fcntl

    points = [(T0 + 60 * i, float(i)) for i in range(1, 6)]
    store.write(_poll("m", points))
    metric = store.index.metrics(name="m")[0]
    store.measures.flush(metric.id)
    with open(store.measures.path(metric.id), "r+b") as held:
        fcntl.lockf(held, fcntl.LOCK_EX)
        assert store.measures.fetch(metric, BUILTIN_POLICIES["medium"], "mean", 60, T0, None,
                                    flush=False) == points
        assert store.measures.last_values([metric.id]) == {metric.id: 5.0}
        assert store.measures.last_update(metric.id) == T0 + 60 * 5 + 60


def test_a_value_flushed_while_its_file_is_being_written_is_not_lost(settings, rrdcached, store):
    """rrdcached's write threads do not exclude each other per file: a value flushed while a
    long batch of the same file is being written was written by a second thread at the
    same time, and the batch's last header write erased it (with no error anywhere). The
    store's rrdcached writes with one thread, so the second write waits for the first."""
    import threading

    from appliance.storage.policy import make_policy
    from appliance.storage.rrdfile import last_update

    store.index.create_policy(make_policy("secondly", [(1, 300_000)], ["mean"]))
    metric = store.index.create_metric("long", "W", None, "secondly")
    end = T0 + 250_000
    batch = [(float(t), float(t % 1000)) for t in range(T0, end)]
    assert not store.write_measures([(metric, batch)]).rejected
    path = store.measures.path(metric.id)
    created = last_update(path)
    flusher = threading.Thread(target=store.measures.flush, args=(metric.id,))
    flusher.start()  # rrdcached starts writing the 250,000 values
    other = Store(settings, seed=False)  # another process's writer, its own connection
    try:
        for _ in range(100_000):
            if last_update(path) != created:
                break  # the batch's write is under way
        newer = end + 10
        assert not other.write_measures([(metric, [(float(newer), 7.0)])]).rejected
        other.measures.flush(metric.id)
    finally:
        flusher.join()
        other.close()
    got = dict(store.measures.fetch(metric, store.index.policy("secondly"), "mean", 1,
                                    end - 5, None))
    assert got.get(end - 1) == (end - 1) % 1000  # the batch's last value
    assert got.get(newer) == 7.0  # and the value flushed meanwhile
