"""Changing an archive policy in use: time to rebuild 1000 metric files, vs. raw rrdtool.

1000 metrics on a 1 min x 7 d policy each hold a week of 1 min points (written through the
store, rrdcached running). The policy is widened to 1 min x 14 d + 1 h x 365 d and every
file is rebuilt (appliance.retention.rebuild_pending: snapshot, ``rrdtool create --source``,
rename, settle, checks). The baseline, in the same run, is bare ``rrdtool create --source``
of the same 1000 files into the same new layout, nothing else.

    .venv/bin/python benchmarks/rebuild.py [--metrics 1000]
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
from appliance.retention import rebuild_pending  # noqa: E402
from appliance.storage.daemon import rrdcached_process  # noqa: E402
from appliance.storage.policy import layout, make_policy  # noqa: E402
from appliance.store import Store  # noqa: E402

WEEK_OF_MINUTES = 7 * 1440


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--metrics", type=int, default=1000)
    n = ap.parse_args().metrics
    with tempfile.TemporaryDirectory() as tmp:
        settings = config.parse({"data_dir": str(Path(tmp) / "store")})
        with rrdcached_process(settings):
            store = Store(settings)
            store.index.create_policy(make_policy("bench", [(60, WEEK_OF_MINUTES)], ["mean"]))
            end = int(time.time()) // 60 * 60 - 120
            times = range(end - (WEEK_OF_MINUTES - 1) * 60, end + 60, 60)
            metrics = [store.index.create_metric(f"m{i}", "W", None, "bench") for i in range(n)]
            for m in metrics:
                assert not store.write_measures([(m, [(t, float(t % 997)) for t in times])]
                                                ).rejected
            wider = make_policy("bench", [(60, 2 * WEEK_OF_MINUTES), (3600, 365 * 24)],
                                ["mean"])
            # Baseline: the same files copied into the new layout by rrdtool alone.
            copies = Path(tmp) / "raw"
            copies.mkdir()
            for m in metrics:
                store.measures.flush(m.id)
            os.sync()
            t = time.perf_counter()
            for m in metrics:
                rrdtool.create(str(copies / f"{m.id}.rrd"), "--source",
                               str(store.measures.path(m.id)), *layout(m, wider))
            raw_s = time.perf_counter() - t
            os.sync()
            t = time.perf_counter()
            queued = store.index.change_policy(wider)
            done = rebuild_pending(store)
            store_s = time.perf_counter() - t
            assert queued == done == n, (queued, done)
            size = store.measures.path(metrics[0].id).stat().st_size
            store.close()
    print(f"rebuild: {n} metrics, a week at 1 min each; 1 min x 7 d -> 1 min x 14 d + 1 h x 365 d")
    print(f"  cpu: {os.cpu_count()} cores, python {sys.version.split()[0]}, "
          f"rrdtool {rrdtool.lib_version()}, new file {size / 1024:.0f} KiB")
    print(f"  raw rrdtool create --source   {raw_s:7.2f} s  ({raw_s / n * 1000:.1f} ms per metric)")
    print(f"  appliance rebuild (safe swap) {store_s:7.2f} s  ({store_s / n * 1000:.1f} ms per "
          f"metric)   ratio {store_s / raw_s:.2f}")
    print(f"  time per 1000 metrics: {store_s / n * 1000:.1f} s")


if __name__ == "__main__":
    main()
