"""Scale-out figures: poll CPU per member with 1-3 members, publishing's CPU, remote-write ingest.

1. Poll-cycle CPU of one appliance's SNMP pollster over the same devices when 1, 2 and 3
   members share them through tooz over a real redis-server (the other members are tooz
   members in this process that only hold their share): it should fall about 1/N.
2. The CPU a remote-write publisher adds to a poll cycle (SNMP poll + local store; publisher
   thread included, until VictoriaMetrics has taken everything): target < 20 %.
3. Remote-write ingest into the appliance (``POST /v1/prometheus/write``) in samples/s, and
   its ratio to the Gnocchi batch endpoint carrying the same points, in-process, same run.

    .venv/bin/python benchmarks/scaleout.py [--devices 30] [--cycles 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance import config, coordination, tokens  # noqa: E402
from appliance.pollsters.snmp import build  # noqa: E402
from appliance.publishers.remote_write import RemoteWrite  # noqa: E402
from appliance.remotewrite import Series, encode  # noqa: E402
from appliance.storage.daemon import rrdcached_process  # noqa: E402
from appliance.store import Store  # noqa: E402
from appliance.web.api import create_app  # noqa: E402
from tests import engines  # noqa: E402  (the tests' engine starters)
from tests.snmp import recordings as rec  # noqa: E402
from tests.snmp.agents import snmpsim  # noqa: E402

INTERFACES = 12  # per device (snmpsim, pure Python, is the slow side: keep it answering)


def poll_cpu(tmp: Path, sim_port: int, redis_url: str, devices: int, members: int,
             cycles: int) -> tuple[int, float]:
    """(targets owned by member 0, CPU seconds per poll cycle of member 0)."""
    targets = [{"name": f"sw{i:02d}", "host": "127.0.0.1", "port": sim_port,
                "community": f"d{i}"} for i in range(devices)]
    shares = []
    for m in range(members):
        settings = config.parse({
            "data_dir": str(tmp / f"m{members}-{m}"),
            "pollsters": {"snmp": {"targets": targets}},
            "coordination": {"backend_url": redis_url, "member_id": f"m{m}",
                             "group_prefix": f"bench{members}", "refresh": 0.2},
        })
        shares.append(coordination.share(settings, "snmp"))
    pollster = build(config.parse({"pollsters": {"snmp": {"targets": targets}}}))
    try:
        deadline = time.monotonic() + 20
        while any(len(s.members) != members for s in shares) and time.monotonic() < deadline:
            time.sleep(0.1)
        owned = shares[0].mine(pollster.targets())
        pollster.poll(owned, time.monotonic() + 30)  # warm: engines, first full walks
        cpu = time.process_time()
        for _ in range(cycles):
            pollster.poll(shares[0].mine(pollster.targets()), time.monotonic() + 30)
        return len(owned), (time.process_time() - cpu) / cycles
    finally:
        pollster.close()
        for s in shares:
            s.close()


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
            for label, sinks in (("store", [store.write]),
                                 ("store+remote write", [store.write, publisher])):
                time.sleep(1.1)  # a new second for every RRD (one update per second)
                cpu, samples = time.process_time(), 0
                for _ in range(cycles):
                    result = pollster.poll(pollster.targets(), time.monotonic() + 30)
                    samples += len(result.samples)
                    for sink in sinks:
                        sink(result)
                    time.sleep(1.1)
                while publisher.backlog():
                    time.sleep(0.005)
                out[label] = (time.process_time() - cpu) / cycles
                out["samples"] = samples / cycles
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
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        redis, url = engines.redis(tmp / "redis")
        vm, vm_url = engines.victoria_metrics(tmp / "vm")
        try:
            data = {f"d{i}": rec.render(rec.system("Switch") + rec.interfaces(INTERFACES, hc=True))
                    for i in range(args.devices)}
            with snmpsim(data, "d0") as sim:
                rows = [poll_cpu(tmp, sim.port, url, args.devices, n, args.cycles)
                        for n in (1, 2, 3)]
                targets = [{"name": f"sw{i:02d}", "host": "127.0.0.1", "port": sim.port,
                            "community": f"d{i}"} for i in range(args.devices)]
                pub = publish_cpu(tmp, targets, vm_url, args.cycles)
            rw, batch = ingest_rates(tmp, series=1000, points=20)
        finally:
            vm.stop()
            redis.stop()
    print(f"scaleout: {args.devices} SNMP devices x {INTERFACES} interfaces, redis-server, "
          f"VictoriaMetrics; {time.strftime('%Y-%m-%d')}")
    base = rows[0][1]
    for n, (owned, cpu) in zip((1, 2, 3), rows, strict=True):
        print(f"  {n} member(s): member 0 polls {owned:2d} devices, {cpu * 1000:7.1f} ms CPU "
              f"per cycle   ratio to 1 member {cpu / base:.2f} (1/N = {1 / n:.2f})")
    alone, both = pub["store"], pub["store+remote write"]
    print(f"  publishing: poll + store {alone * 1000:.1f} ms CPU per cycle, poll + store + remote "
          f"write {both * 1000:.1f} ms ({pub['samples']:.0f} samples): "
          f"+{(both / alone - 1) * 100:.0f} % (target < 20 %)")
    print(f"  ingest: remote write {rw:,.0f} samples/s, batch API {batch:,.0f} measures/s, "
          f"ratio {rw / batch:.2f}")


if __name__ == "__main__":
    main()
