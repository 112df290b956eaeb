"""Scale-out figures: poll CPU per member with 1-3 members, publishing's CPU, remote-write ingest.

1. Poll-cycle CPU of each member's SNMP agent over the same devices when 1, 2 and 3
   appliances share them through tooz over a real redis-server. Each member is a whole
   ``appliance run`` (own data dir, port, supervisord, rrdcached, gunicorn, forked agents),
   started as the coordination test starts them; the figure is the CPU time of that
   member's ``appliance: poll-snmp`` process (poll, local store, coordination thread: all
   it does) over whole cycles, read from /proc between two cycle ends. It should fall
   about 1/N.
2. The CPU a remote-write publisher adds to a poll cycle (SNMP poll + local store; publisher
   thread included, until VictoriaMetrics has taken everything), in this process, the two
   kinds of cycle alternating, the median of each: target < 20 %.
3. Remote-write ingest into the appliance (``POST /v1/prometheus/write``) in samples/s, and
   its ratio to the Gnocchi batch endpoint carrying the same points, in-process, same run.

    .venv/bin/python benchmarks/scaleout.py [--devices 30] [--cycles 3] [--interval 15]
        [--publish-cycles 9] [--refresh 1.0]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance import config, tokens  # noqa: E402
from appliance.pollsters.snmp import build  # noqa: E402
from appliance.publishers.remote_write import RemoteWrite  # noqa: E402
from appliance.remotewrite import Series, encode  # noqa: E402
from appliance.scaleout_config import CoordinationSettings  # noqa: E402
from appliance.storage.daemon import rrdcached_process  # noqa: E402
from appliance.store import Store  # noqa: E402
from appliance.web.api import create_app  # noqa: E402
from tests import cluster, engines  # noqa: E402  (the tests' engine starters and readers)
from tests.conftest import RunningAppliance, wait_for  # noqa: E402
from tests.snmp import recordings as rec  # noqa: E402
from tests.snmp.agents import snmpsim  # noqa: E402

INTERFACES = 12  # per device (snmpsim, pure Python, is the slow side: keep it answering)


def _member_config(targets: list[dict], redis_url: str, members: int, m: int,
                   interval: int, refresh: float) -> dict:
    """One member's config: only SNMP runs (no host, alarms or traps), all sharing."""
    return {
        "api": {"workers": 1},
        "pollsters": {"host": {"enabled": False},
                      "snmp": {"interval": interval, "targets": targets,
                               "traps": {"enabled": False}}},
        "alarms": {"enabled": False},
        "coordination": {"backend_url": redis_url, "member_id": f"m{m}",
                         "group_prefix": f"bench{members}", "refresh": refresh},
    }


def _cycle_ends(apps: list[RunningAppliance], cycles: int,
                interval: int) -> list[list[tuple[int, float, int]]]:
    """For each member, at each cycle end (its first owned target's poll count moved):
    (polls so far, CPU s of its poll-snmp process then, failed polls so far of its share).

    All members are watched together so that they are measured over the same minutes;
    a cycle end is seen within ~0.1 s, which the poll of a single device outlasts."""
    pids = [cluster.worker_pid(app, "snmp") for app in apps]
    owned = [cluster.groups(app)["snmp"]["owned"] for app in apps]
    ends: list[list[tuple[int, float, int]]] = [[] for _ in apps]
    last = [cluster.polls(app).get(o[0], 0) for app, o in zip(apps, owned, strict=True)]
    deadline = time.monotonic() + (cycles + 3) * interval * 2
    while any(len(e) < cycles + 2 for e in ends):  # a warm cycle, a start, then `cycles`
        assert time.monotonic() < deadline, "poll cycles did not end in time"
        for i, app in enumerate(apps):
            sources = [s for s in cluster.status(app)["sources"] if s["source"] == "snmp"]
            count = next((s["polls"] for s in sources if s["target"] == owned[i][0]), 0)
            if count > last[i]:
                cpu = psutil.Process(pids[i]).cpu_times()
                errors = sum(s["errors"] for s in sources if s["target"] in owned[i])
                ends[i].append((count, cpu.user + cpu.system, errors))
                last[i] = count
        time.sleep(0.1)
    return ends


def poll_cpu(tmp: Path, targets: list[dict], redis_url: str, members: int, cycles: int,
             interval: int, refresh: float) -> list[tuple[int, float, int]]:
    """Per member: (devices it polls, CPU s per poll cycle of its poll-snmp process, failed
    polls of its devices while measured)."""
    names = [t["name"] for t in targets]
    apps = [RunningAppliance(tmp / f"n{members}-m{m}",
                             _member_config(targets, redis_url, members, m, interval, refresh))
            for m in range(members)]
    try:
        for app in apps:
            app.start()
        wait_for(lambda: cluster.partitioned(apps, "snmp", names), timeout=60, interval=0.5,
                 what=f"{len(names)} targets split over {members} members")
        ends = _cycle_ends(apps, cycles, interval)
        assert cluster.partitioned(apps, "snmp", names), "the ring moved while measuring"
        rows = []
        for app, e in zip(apps, ends, strict=True):
            (n0, cpu0, err0), (n1, cpu1, err1) = e[1], e[-1]
            rows.append((len(cluster.groups(app)["snmp"]["owned"]), (cpu1 - cpu0) / (n1 - n0),
                         err1 - err0))
        return rows
    finally:
        for app in apps:
            app.stop()


def publish_cpu(tmp: Path, targets: list[dict], vm_url: str, cycles: int) -> dict[str, float]:
    """CPU s per poll cycle (SNMP poll + local store), without and with a remote-write publisher
    (its sender thread included, until VictoriaMetrics has taken every sample)."""
    settings = config.parse({"data_dir": str(tmp / "pub"),
                             "pollsters": {"snmp": {"targets": targets}}})
    pollster = build(settings)
    out: dict[str, float] = {}
    with rrdcached_process(settings):
        store = Store(settings)
        cfg = config.parse({"publishers": [{"kind": "prometheus_remote_write",
                                            "url": f"{vm_url}/api/v1/write"}]}).publishers[0]
        publisher = RemoteWrite(cfg, settings.run_dir, "bench", store.index)
        try:
            warm = pollster.poll(pollster.targets(), time.monotonic() + 30)
            store.write(warm)
            publisher(warm)
            # One cycle at a time, the two kinds alternating (so both meet the same
            # minutes of a shared machine), each until the publisher has sent everything:
            # the median cycle of each kind.
            kinds = (("store", [store.write]), ("store+remote write", [store.write, publisher]))
            spent: dict[str, list[float]] = {label: [] for label, _ in kinds}
            for _ in range(cycles):
                for label, sinks in kinds:
                    time.sleep(1.1)  # a new second for every RRD (one update per second)
                    cpu = time.process_time()
                    result = pollster.poll(pollster.targets(), time.monotonic() + 30)
                    for sink in sinks:
                        sink(result)
                    while publisher.backlog():
                        time.sleep(0.005)
                    spent[label].append(time.process_time() - cpu)
                    out["samples"] = len(result.samples)
            for label, values in spent.items():
                out[label] = statistics.median(values)
            assert not publisher.dropped and not publisher.failures, publisher.last_error
        finally:
            publisher.close()
            pollster.close()
            store.close()
    return out


def ingest_rates(tmp: Path, series: int, points: int) -> tuple[float, float]:
    """(remote write samples/s, batch API measures/s), the same points through each."""
    settings = config.parse({"data_dir": str(tmp / "ingest")})
    t0 = int(time.time()) - 2 * points * 60
    with rrdcached_process(settings):
        store = Store(settings)
        token = tokens.create(store.index, "bench", "admin")
        client = create_app(settings, store).test_client()
        auth = {"Authorization": f"Bearer {token}"}
        bodies = [encode([Series({"__name__": f"bench_{s}", "job": "j", "instance": "i"},
                                 [(t0 + 60 * p, float(p))]) for s in range(series)])
                  for p in range(points)]
        r = client.post("/v1/prometheus/write", data=bodies[0], headers=auth)
        assert r.status_code == 202, r.json  # creates the metrics: not timed
        t = time.perf_counter()
        for body in bodies[1:]:
            client.post("/v1/prometheus/write", data=body, headers=auth)
        rw = series * (points - 1) / (time.perf_counter() - t)
        resource = client.get("/v1/resource/generic", headers=auth).json[0]
        ids = resource["metrics"]
        batches = [orjson.dumps({ids[f"bench_{s}"]: [{"timestamp": t0 + 60 * (points + p),
                                                      "value": float(p)}]
                                 for s in range(series)}) for p in range(1, points)]
        t = time.perf_counter()
        for body in batches:
            client.post("/v1/batch/metrics/measures", data=body, headers={
                **auth, "Content-Type": "application/json"})
        batch = series * (points - 1) / (time.perf_counter() - t)
        store.close()
    return rw, batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=30)
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--interval", type=int, default=15, help="SNMP poll interval, s")
    ap.add_argument("--publish-cycles", type=int, default=9,
                    help="cycles of each kind, alternating, for publishing's CPU (median)")
    ap.add_argument("--refresh", type=float, default=CoordinationSettings().refresh,
                    help="coordination.refresh, s (how often each member reads the group)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        redis, url = engines.redis(tmp / "redis")
        vm, vm_url = engines.victoria_metrics(tmp / "vm")
        try:
            data = {f"d{i}": rec.render(rec.system("Switch") + rec.interfaces(INTERFACES, hc=True))
                    for i in range(args.devices)}
            with snmpsim(data, "d0") as sim:
                targets = [{"name": f"sw{i:02d}", "host": "127.0.0.1", "port": sim.port,
                            "community": f"d{i}", "timeout": 5} for i in range(args.devices)]
                rows = {n: poll_cpu(tmp, targets, url, n, args.cycles, args.interval, args.refresh)
                        for n in (1, 2, 3)}
                pub = publish_cpu(tmp, targets, vm_url, args.publish_cycles)
            rw, batch = ingest_rates(tmp, series=1000, points=20)
        finally:
            vm.stop()
            redis.stop()
    print(f"scaleout: {args.devices} SNMP devices x {INTERFACES} interfaces, redis-server, "
          f"VictoriaMetrics; {time.strftime('%Y-%m-%d')}")
    base = rows[1][0][1]
    for n, members in rows.items():
        for m, (owned, cpu, errors) in enumerate(members):
            print(f"  {n} member(s), m{m}: polls {owned:2d} devices, {cpu * 1000:7.1f} ms CPU "
                  f"per cycle (poll-snmp process)  ratio to 1 member {cpu / base:.2f}"
                  f"{f'  ({errors} failed polls)' if errors else ''}")
        mean = sum(cpu for _, cpu, _ in members) / n
        print(f"  {n} member(s): mean {mean * 1000:7.1f} ms CPU per member per cycle, ratio "
              f"{mean / base:.2f} (1/N = {1 / n:.2f})")
    alone, both = pub["store"], pub["store+remote write"]
    print(f"  publishing: poll + store {alone * 1000:.1f} ms CPU per cycle, poll + store + remote "
          f"write {both * 1000:.1f} ms ({pub['samples']:.0f} samples): "
          f"+{(both / alone - 1) * 100:.0f} % (target < 20 %)")
    print(f"  ingest: remote write {rw:,.0f} samples/s, batch API {batch:,.0f} measures/s, "
          f"ratio {rw / batch:.2f}")


if __name__ == "__main__":
    main()
