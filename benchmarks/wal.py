"""The write-ahead log's bound and the restart it costs, against raw rrdtool in the same run.

A steady appliance writes N metrics every `interval` seconds. The WAL keeps a segment until
rrdcached has certainly written its values (storage.daemon.wal_retention, 1080 s with the
default write delay) plus one rotation (60 s), so its size is bounded by the bytes of one
cycle times the cycles in that window. This script measures the bytes of real cycles through
the store's write path, prints the bound, then fills a WAL with exactly that many cycles,
kills rrdcached with SIGKILL (nothing it held was written) and times the replay that the next
start runs (and the one after a clean stop, when the files already hold everything). The
baseline is librrd writing the same values straight into the same number of files.

    .venv/bin/python benchmarks/wal.py [--metrics 1000] [--interval 10]
    .venv/bin/python benchmarks/wal.py --soak 3600     # the same in real time, for an hour
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import tempfile
import time
from pathlib import Path

import rrdtool

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance import config  # noqa: E402
from appliance.model import Kind, PollResult, Resource, Sample  # noqa: E402
from appliance.storage.daemon import prepare, rrdcached_process, wal_retention  # noqa: E402
from appliance.storage.wal import ROTATE_SECONDS  # noqa: E402
from appliance.store import Store  # noqa: E402


def cycle(resources: list[Resource], per: int, ts: float) -> PollResult:
    return PollResult(samples=[
        Sample(res, f"bench.m{m}", "B", Kind.GAUGE, float(m) + ts % 7, ts)
        for res in resources for m in range(per)
    ])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--metrics", type=int, default=1000)
    parser.add_argument("--interval", type=int, default=10)
    parser.add_argument("--soak", type=int, default=0,
                        help="write in real time for this many seconds, printing the size")
    args = parser.parse_args()
    if args.soak:
        soak(args.metrics, args.interval, args.soak)
        return
    per = 10
    resources = [Resource.from_key("host_disk", f"bench://d{i}", {"device_name": f"d{i}"})
                 for i in range(args.metrics // per)]
    with tempfile.TemporaryDirectory() as tmp:
        settings = config.parse({"data_dir": str(Path(tmp) / "d"),
                                 "archive_policy_rules": [{"pattern": "*", "policy": "medium"}]})
        window = wal_retention(settings) + ROTATE_SECONDS
        cycles = math.ceil(window / args.interval)
        t0 = (time.time() // 60 - 2 * 1440) * 60 + 0.123
        with rrdcached_process(settings) as proc:
            store = Store(settings)
            store.write(cycle(resources, per, t0))  # creates the files
            wal = settings.data_dir / "wal"
            before = sum(p.stat().st_size for p in wal.glob("*.wal"))
            for k in range(1, cycles + 1):
                store.write(cycle(resources, per, t0 + k * args.interval))
            size = sum(p.stat().st_size for p in wal.glob("*.wal")) - before
            store.close()
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            values = (cycles + 1) * args.metrics  # and the cycle that created the files
            report = prepare(settings)
            again = prepare(settings)
        print(f"WAL: {size / cycles / 1024:.1f} KiB per cycle of {args.metrics} metrics; "
              f"kept {window:.0f} s = {cycles} cycles at {args.interval} s -> bound "
              f"{size / 2**20:.1f} MiB ({values} values)")
        print(f"replay after kill -9: {report.values} values into {report.files} files in "
              f"{report.seconds:.2f} s; after a clean stop (all held): {again.seconds:.2f} s")
        assert report.values == values and again.values == 0, (report, again)

        # Baseline: the same values written straight into as many files by librrd.
        raw = Path(tmp) / "raw"
        raw.mkdir()
        paths = []
        for i in range(args.metrics):
            path = str(raw / f"{i}.rrd")
            rrdtool.create(path, "--start", str(int(t0) - 60), "--step", "60",
                           "DS:v:GAUGE:600:U:U", "RRA:AVERAGE:0.5:1:10080",
                           "RRA:MIN:0.5:1:10080", "RRA:MAX:0.5:1:10080",
                           "RRA:AVERAGE:0.5:60:8760", "RRA:MIN:0.5:60:8760",
                           "RRA:MAX:0.5:60:8760")
            paths.append(path)
        started = time.perf_counter()
        for path in paths:
            rrdtool.update(path, *[f"{t0 + 60 + k * args.interval:.3f}:1"
                                   for k in range(1, cycles + 1)])
        baseline = time.perf_counter() - started
        print(f"raw rrdtool, same values: {baseline:.2f} s; replay / raw = "
              f"{report.seconds / baseline:.2f}")


def soak(metrics: int, interval: int, seconds: int) -> None:
    """A steady appliance's write path in real time: the WAL's size each minute."""
    per = 10
    resources = [Resource.from_key("host_disk", f"soak://d{i}", {"device_name": f"d{i}"})
                 for i in range(metrics // per)]
    with tempfile.TemporaryDirectory() as tmp:
        settings = config.parse({"data_dir": str(Path(tmp) / "d")})
        wal = settings.data_dir / "wal"
        with rrdcached_process(settings):
            store = Store(settings)
            started = time.time()
            largest = 0
            k = 0
            while time.time() - started < seconds:
                store.write(cycle(resources, per, time.time()))
                k += 1
                size = sum(p.stat().st_size for p in wal.glob("*.wal"))
                largest = max(largest, size)
                if k % (60 // interval) == 0:
                    print(f"{time.time() - started:6.0f} s: WAL {size / 2**20:.2f} MiB in "
                          f"{len(list(wal.glob('*.wal')))} segments (largest so far "
                          f"{largest / 2**20:.2f} MiB)", flush=True)
                time.sleep(max(0.0, started + k * interval - time.time()))
            store.close()


if __name__ == "__main__":
    main()
