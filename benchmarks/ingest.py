"""Ingest through the store's write path vs. straight rrdtool, in the same run.

Writes 1000 metrics x 60 points (1-minute steps) twice: the first write creates every RRD
(history accepted from the oldest point), the second appends to existing files. The store
path is the pollster path: PollResult -> index (cached) -> WAL -> one rrdcached batch. The
baseline is librrd called directly: one rrdtool.update per file carrying all 60 timestamps.

    .venv/bin/python benchmarks/ingest.py [--metrics 1000] [--points 60]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import rrdtool

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance import config  # noqa: E402
from appliance.model import Kind, PollResult, Resource, Sample  # noqa: E402
from appliance.storage.daemon import rrdcached_process  # noqa: E402
from appliance.storage.policy import BUILTIN_POLICIES, heartbeat, rras  # noqa: E402
from appliance.store import Store  # noqa: E402

METRICS_PER_RESOURCE = 10


def poll_results(n_metrics: int, points: int, t0: int) -> PollResult:
    resources = [
        Resource.from_key("host_network_interface", f"bench://r{i}", {"device_name": f"eth{i}"})
        for i in range(n_metrics // METRICS_PER_RESOURCE)
    ]
    samples = [
        Sample(res, f"bench.metric.{m}", "B", Kind.GAUGE, float(p * m), t0 + 60 * p)
        for res in resources
        for m in range(METRICS_PER_RESOURCE)
        for p in range(points)
    ]
    return PollResult(samples=samples)


def store_path(tmp: Path, n: int, points: int, t0: int) -> tuple[float, float, int]:
    settings = config.parse({"data_dir": str(tmp / "store")})
    with rrdcached_process(settings):
        store = Store(settings)
        first, second = poll_results(n, points, t0), poll_results(n, points, t0 + 60 * points)
        os.sync()  # the raw path's ~450 MB of new files must not be written back meanwhile
        t = time.perf_counter()
        r1 = store.write(first)
        create_s = time.perf_counter() - t
        t = time.perf_counter()
        r2 = store.write(second)
        append_s = time.perf_counter() - t
        assert not r1.rejected and not r2.rejected, (r1.rejected[:3], r2.rejected[:3])
        # Readable: a read flushes the metric first; prove one round-trips.
        m = next(iter(r2.metrics.values()))
        got = store.measures.fetch(m, BUILTIN_POLICIES["medium"], "mean", 60, t0, None)
        assert len(got) >= 2 * points - 2, len(got)
        store.close()
        return create_s, append_s, r1.accepted + r2.accepted


def raw_path(tmp: Path, n: int, points: int, t0: int) -> tuple[float, float]:
    policy = BUILTIN_POLICIES["medium"]
    d = tmp / "raw"
    d.mkdir()
    paths = [str(d / f"{i}.rrd") for i in range(n)]
    ds = f"DS:v:GAUGE:{heartbeat(policy)}:U:U"

    def values(base: int) -> list[str]:
        return [f"{base + 60 * p}:{float(p)!r}" for p in range(points)]

    os.sync()
    t = time.perf_counter()
    for p in paths:
        rrdtool.create(p, "--start", str(t0 - 60), "--step", "60", ds, *rras(policy))
        rrdtool.update(p, *values(t0))
    create_s = time.perf_counter() - t
    t = time.perf_counter()
    for p in paths:
        rrdtool.update(p, *values(t0 + 60 * points))
    append_s = time.perf_counter() - t
    return create_s, append_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--metrics", type=int, default=1000)
    ap.add_argument("--points", type=int, default=60)
    args = ap.parse_args()
    n, points = args.metrics, args.points
    t0 = (int(time.time()) // 60) * 60 - 2 * 60 * points - 3600
    with tempfile.TemporaryDirectory() as tmp:
        raw_create, raw_append = raw_path(Path(tmp), n, points, t0)
        st_create, st_append, written = store_path(Path(tmp), n, points, t0)
    values = n * points
    assert written == 2 * values
    print(f"ingest: {n} metrics x {points} points, twice (new files, then existing files)")
    print(f"  cpu: {os.cpu_count()} cores, python {sys.version.split()[0]}, "
          f"rrdtool {rrdtool.lib_version()}")
    rows = [
        ("first write (creates files)", values / raw_create, values / st_create),
        ("append to existing files", values / raw_append, values / st_append),
    ]
    for label, raw, store in rows:
        print(f"  {label:30s} raw rrdtool {raw:>11,.0f} values/s   store {store:>11,.0f} values/s"
              f"   ratio {store / raw:.2f}")
    total_raw = 2 * values / (raw_create + raw_append)
    total_store = 2 * values / (st_create + st_append)
    print(f"  {'overall':30s} raw rrdtool {total_raw:>11,.0f} values/s   store "
          f"{total_store:>11,.0f} values/s   ratio {total_store / total_raw:.2f} (target >= 0.50)")


if __name__ == "__main__":
    main()
