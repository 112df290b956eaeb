"""A 12-panel Grafana dashboard through the Prometheus query API: appliance vs Prometheus.

Both hold the same day of one-minute samples of 100 disks (gauges ``disk_usage`` and
``disk_free``, counter ``disk_device_read_bytes_total``; tests/promserver.py): the appliance
(``appliance run`` with pollsters off, gunicorn with 2 workers) in its RRD files, Debian's
Prometheus 2.42 in a TSDB backfilled by promtool, started in this run. Each panel's query
is sent as Grafana sends it (``POST /api/v1/query_range``, one day, 60 s step) to both,
alternating, and the p50 per query and of the whole dashboard (the 12 queries one after
the other, as a conservative stand-in for Grafana's parallel requests) is printed with the
ratio appliance / Prometheus; beside them, the same queries through the app in this
process (Flask's test client: the engine's own cost, without HTTP and gunicorn). Targets:
dashboard < 100 ms, no query > 2x Prometheus.

    .venv/bin/python benchmarks/promql.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance import config  # noqa: E402
from appliance.store import Store  # noqa: E402
from appliance.web.api import create_app  # noqa: E402
from tests.conftest import RunningAppliance  # noqa: E402
from tests.promserver import Prometheus, fleet_samples, openmetrics  # noqa: E402

DISKS = 100
DAY = 86400
PANELS = [
    ("one series", 'disk_usage{device_name="sd000"}'),
    ("avg of 100", "avg(disk_usage)"),
    ("sum by host of rate, 100", "sum by (host_name) (rate(disk_device_read_bytes_total[5m]))"),
    ("topk 5 of rate, 100", "topk(5, rate(disk_device_read_bytes_total[5m]))"),
    ("max by host, 100", "max by (host_name) (disk_free)"),
    ("min of 100", "min(disk_free)"),
    ("count of filter, 100", "count(disk_usage > 50)"),
    ("avg_over_time 10m, 25", 'avg_over_time(disk_usage{host_name="host1"}[10m])'),
    ("max_over_time 1h, 1", 'max_over_time(disk_usage{device_name="sd001"}[1h])'),
    ("increase 1h, 1", 'increase(disk_device_read_bytes_total{device_name="sd002"}[1h])'),
    ("ratio on(), 25", 'disk_usage{host_name="host2"} / on(resource_id) disk_free'),
    ("sum of irate, 100", "sum(irate(disk_device_read_bytes_total[5m]))"),
]


def p50_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        app = RunningAppliance(Path(tmp) / "appliance", {"pollsters": {
            "host": {"enabled": False}, "sensors": {"enabled": False},
            "libvirt": {"enabled": False}}})
        app.start()
        prom = Prometheus(Path(tmp))
        try:
            end = time.time() - 120
            samples = fleet_samples(DISKS, DAY // 60 + 60, end)
            settings = config.load(app.config_path, app.data_dir)
            store = Store(settings, seed=False)
            t0 = time.perf_counter()
            outcome = store.write(samples)
            print(f"loaded {outcome.accepted:,} samples into the appliance in "
                  f"{time.perf_counter() - t0:.1f} s")
            session = requests.Session()
            session.headers.update(app.headers)
            series = session.get(f"{app.url}/api/v1/series",
                                 params={"match[]": '{__name__=~".+"}'}).json()["data"]
            t0 = time.perf_counter()
            prom.start(openmetrics(samples, series))
            print(f"backfilled and started Prometheus 2.42 in {time.perf_counter() - t0:.1f} s")
            last = max(s.timestamp for s in samples.samples)
            form = {"start": last - DAY, "end": last, "step": 60}
            local = create_app(settings, store).test_client()
            local.environ_base["HTTP_AUTHORIZATION"] = app.headers["Authorization"]
            targets = {"appliance": (session, app.url), "prometheus": (requests.Session(),
                                                                       prom.url),
                       "in process": (local, "")}
            times: dict[str, dict[str, list[float]]] = {k: {q: [] for _, q in PANELS}
                                                       for k in targets}
            totals: dict[str, list[float]] = {k: [] for k in targets}
            for round_ in range(args.rounds + 2):  # two warm-up rounds
                for name, (s, url) in targets.items():
                    total = 0.0
                    for _, query in PANELS:
                        t = time.perf_counter()
                        r = s.post(f"{url}/api/v1/query_range", data={"query": query, **form})
                        took = time.perf_counter() - t
                        body = r.json() if url else r.get_json()
                        assert r.status_code == 200 and body["data"]["result"], (name, query,
                                                                                 body)
                        total += took
                        if round_ >= 2:
                            times[name][query].append(took)
                    if round_ >= 2:
                        totals[name].append(total)
            store.close()
        finally:
            prom.stop()
            app.stop()
    print(f"\n{len(PANELS)} panels, one day at 60 s step ({DAY // 60 + 1} points), {DISKS} "
          f"series for the aggregations, p50 of {args.rounds} rounds, HTTP POST query_range")
    print("appliance: HTTP to gunicorn; in process: the same app through Flask's test client "
          "(no HTTP)")
    print(f"{'panel':<28} {'appliance':>10} {'Prometheus':>11} {'ratio':>6} {'in process':>11}")
    worst = 0.0
    for label, query in PANELS:
        ours, theirs = p50_ms(times["appliance"][query]), p50_ms(times["prometheus"][query])
        worst = max(worst, ours / theirs)
        print(f"{label:<28} {ours:>8.1f}ms {theirs:>9.1f}ms {ours / theirs:>6.2f} "
              f"{p50_ms(times['in process'][query]):>9.1f}ms")
    ours, theirs = p50_ms(totals["appliance"]), p50_ms(totals["prometheus"])
    print(f"{'whole dashboard':<28} {ours:>8.1f}ms {theirs:>9.1f}ms {ours / theirs:>6.2f} "
          f"{p50_ms(totals['in process']):>9.1f}ms")
    print(f"1-minute load average at the end: {os.getloadavg()[0]:.2f} (2 cores)")
    print(f"targets: dashboard < 100 ms ({'met' if ours < 100 else 'NOT met'}), "
          f"no query > 2x Prometheus (worst {worst:.2f}x: "
          f"{'met' if worst <= 2 else 'NOT met'})")


if __name__ == "__main__":
    main()
