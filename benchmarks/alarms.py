"""One alarm evaluation round: 1000 threshold alarms over 1000 metrics, vs. raw rrdtool.fetch.

Sets up 1000 metrics with an hour of 1-minute points through the store's write path (real
rrdcached), and 1000 ``gnocchi_aggregation_by_metrics_threshold`` alarms, one per metric
(evaluation_periods 3, a third of them breaching). Then times evaluation rounds with the
real Evaluator: load alarms from SQLite, resolve metrics, flush rrdcached, fetch, decide,
record transitions, queue notifications (``log://`` actions). The baseline is the floor of
the same reading: 1000 plain ``rrdtool.fetch`` calls on the same files, in the same run.

    .venv/bin/python benchmarks/alarms.py [--alarms 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import rrdtool

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance import config  # noqa: E402
from appliance.alarms.actions import Notifier  # noqa: E402
from appliance.alarms.evaluator import Evaluator  # noqa: E402
from appliance.alarms.model import parse_alarm  # noqa: E402
from appliance.alarms.store import AlarmStore  # noqa: E402
from appliance.storage.daemon import rrdcached_process  # noqa: E402
from appliance.store import Store  # noqa: E402

POINTS = 60


def setup(store: Store, n: int, t0: int) -> list[str]:
    metrics = [store.index.create_metric(None, None, archive_policy_name="medium")
               for _ in range(n)]
    outcome = store.write_measures(
        (m, [(t0 + 60 * p, float(90 if i % 3 == 0 else 10)) for p in range(POINTS)])
        for i, m in enumerate(metrics)
    )
    assert not outcome.rejected, outcome.rejected[:3]
    alarms = AlarmStore(store.index)
    for i, m in enumerate(metrics):
        alarms.create(parse_alarm({
            "name": f"bench-{i}", "type": "gnocchi_aggregation_by_metrics_threshold",
            "gnocchi_aggregation_by_metrics_threshold_rule": {
                "metrics": [m.id], "threshold": 50, "comparison_operator": "gt",
                "granularity": 60, "evaluation_periods": 3},
            "alarm_actions": ["log://"], "ok_actions": ["log://"],
        }, time.time()))
    return [m.id for m in metrics]


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alarms", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    now_min = int(time.time()) // 60 * 60
    t0 = now_min - 2 * 3600
    now = t0 + 60 * POINTS + 1
    with tempfile.TemporaryDirectory() as tmp:
        settings = config.parse({"data_dir": str(Path(tmp) / "data")})
        with rrdcached_process(settings):
            store = Store(settings)
            ids = setup(store, args.alarms, t0)
            notifier = Notifier(timeout=5, retries=0)
            evaluator = Evaluator(store, notifier)
            first = evaluator.run_round(now=now)  # every alarm leaves insufficient data
            assert first.transitions == args.alarms, first
            rounds = []
            for _ in range(args.rounds):
                report = None

                def one():
                    nonlocal report
                    report = evaluator.run_round(now=now)

                rounds.append((*timed(one), report))
            paths = [str(store.measures.path(i)) for i in ids]
            start, end = str(now - 240), str(now)

            def raw():
                for p in paths:
                    rrdtool.fetch(p, "AVERAGE", "-r", "60", "-s", start, "-e", end)

            baseline = [timed(raw) for _ in range(args.rounds)]
            notifier.close()
            store.close()
    wall = statistics.median(r[0] for r in rounds)
    cpu = statistics.median(r[1] for r in rounds)
    raw_wall = statistics.median(b[0] for b in baseline)
    raw_cpu = statistics.median(b[1] for b in baseline)
    last = rounds[-1][2]
    print(f"alarms: {args.alarms} threshold alarms over {args.alarms} metrics, "
          f"median of {args.rounds} rounds")
    print(f"  first round (all transitions + history + notifications): "
          f"{first.seconds * 1000:.0f} ms, {first.transitions} transitions")
    print(f"  steady round: {wall * 1000:.1f} ms wall, {cpu * 1000:.1f} ms CPU "
          f"({last.reads} reads, {last.evaluated} evaluated, {last.transitions} transitions)")
    print(f"  raw baseline ({args.alarms} rrdtool.fetch): {raw_wall * 1000:.1f} ms wall, "
          f"{raw_cpu * 1000:.1f} ms CPU")
    print(f"  ratio round / raw fetch: {wall / raw_wall:.1f}x; target < 2000 ms per round: "
          f"{'met' if wall < 2 else 'NOT met'}")


if __name__ == "__main__":
    main()
