"""One libvirt poll of 1000 domains (test driver), plus the store write, vs. raw libvirt.

The node has 1000 domains (every 4th shut off; the running ones have two disks and a NIC).
The test driver answers the bulk call with state only, so this measures the per-domain
path, the expensive one. Our path: ``LibvirtPollster.poll`` (threads, deadlines, meters,
samples) then ``Store.write`` (index + rrdcached). Baseline in the same run: the same libvirt
calls the poll makes, made sequentially without our code (median of 3). Seven rounds: the
first creates every metric and RRD file, the second creates cpu_util's (it needs two polls),
the rest are the steady state every later poll looks like (their median is reported).
CPU is this process's (the test driver runs in it) plus rrdcached's; the garbage collector
runs as in the agent (once per cycle, counted in the store write).

    .venv/bin/python benchmarks/libvirt.py [--domains 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

# This file's name shadows the libvirt binding when its folder is first on sys.path.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

import libvirt  # noqa: E402
import psutil  # noqa: E402

from appliance import config, gcpolicy  # noqa: E402
from appliance.config import LibvirtSettings  # noqa: E402
from appliance.pollsters.libvirt import LibvirtPollster  # noqa: E402
from appliance.pollsters.libvirt.inspector import BULK_FLAGS, BULK_GROUPS  # noqa: E402
from appliance.storage.daemon import rrdcached_process  # noqa: E402
from appliance.store import Store  # noqa: E402
from tests.test_libvirt import node_xml  # noqa: E402  (the tests' domain generator)

COLLECTD_CPU_PER_1000 = 0.0165  # collectd 5.12 virt + rrdtool, FIELD-NOTES.md
STEADY_ROUNDS = 5


def raw_calls(uri: str) -> tuple[float, float, int]:
    """The libvirt calls of one steady poll, sequential, no threads, no samples."""
    conn = libvirt.open(uri)
    w, c = time.perf_counter(), time.process_time()
    values = 0
    for dom, _ in conn.getAllDomainStats(BULK_GROUPS, BULK_FLAGS):
        state, *_ = dom.info()
        values += 3
        if state != libvirt.VIR_DOMAIN_RUNNING:
            continue
        dom.memoryStats()
        root = ET.fromstring(dom.XMLDesc(0))
        for t in root.iterfind("devices/disk/target"):
            if t.get("dev") == "sda":
                continue  # the empty cdrom, skipped by the pollster too
            dom.blockStats(t.get("dev"))
            dom.blockInfo(t.get("dev"))
            values += 7
        for t in root.iterfind("devices/interface/target"):
            dom.interfaceStats(t.get("dev"))
            values += 8
        values += 2  # cpu, cpu_util
    w, c = time.perf_counter() - w, time.process_time() - c
    conn.close()
    return w, c, values


def measured(fn, daemon: psutil.Process):
    w, c = time.perf_counter(), time.process_time()
    d = sum(daemon.cpu_times()[:2])
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c, sum(daemon.cpu_times()[:2]) - d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--domains", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        node = Path(tmp) / "node.xml"
        node.write_text(node_xml(args.domains))
        uri = f"test://{node}"
        settings = config.parse({"data_dir": str(Path(tmp) / "store")})
        with rrdcached_process(settings) as proc:
            rrdcached = psutil.Process(proc.pid)
            store = Store(settings)
            gcpolicy.take_over()  # as the agent does
            pollster = LibvirtPollster(LibvirtSettings(uri=uri, lifecycle_events=False))
            rounds = []
            for _ in range(STEADY_ROUNDS + 2):
                result, pw, pc, _ = measured(
                    lambda: pollster.poll(pollster.targets(), time.monotonic() + 60), rrdcached)
                assert result.reports[0].ok, result.reports[0]
                written, sw, sc, sd = measured(lambda r=result: store.write(r), rrdcached)
                assert not written.rejected, written.rejected[:3]
                n = len(result.samples)
                del result, written  # released before the collection, as in the agent
                _, gw, gc_cpu, _ = measured(gcpolicy.settle, rrdcached)
                rounds.append((n, pw, pc, sw + gw, sc + sd + gc_cpu))
                time.sleep(1.1)  # the next poll's timestamps must be newer (RRD's rule)
            pollster.close()
            store.close()
            raw_w, raw_c, raw_values = sorted(raw_calls(uri) for _ in range(3))[1]

    print(f"libvirt: {args.domains} domains on the test driver (per-domain path), "
          f"{psutil.cpu_count()} cores")
    print(f"  raw libvirt calls (sequential)  wall {raw_w:.3f} s   cpu {raw_c:.3f} s   "
          f"({raw_values} values, {raw_c / raw_values * 1000:.4f} cpu-s/1000)")
    steady = sorted(rounds[2:], key=lambda r: r[2] + r[4])[STEADY_ROUNDS // 2]
    labels = ("1st (creates metrics)", "2nd (creates cpu_util)",
              f"steady (median of {STEADY_ROUNDS})")
    for label, (n, pw, pc, sw, sc) in zip(labels, [*rounds[:2], steady], strict=True):
        print(f"  {label:23s} poll wall {pw:.3f} s cpu {pc:.3f} s | store write wall {sw:.3f} s "
              f"cpu {sc:.3f} s (incl. rrdcached) | {n} values")
        print(f"  {'':23s} cpu-s per 1000 values: poll {pc / n * 1000:.4f}, poll+store "
              f"{(pc + sc) / n * 1000:.4f} (collectd {COLLECTD_CPU_PER_1000}); poll/raw ratio: "
              f"wall {pw / raw_w:.2f}, cpu {pc / raw_c:.2f}")
    n, pw, pc, sw, sc = steady
    for what, wall, cpu in (("poll", pw, pc), ("poll+store", pw + sw, pc + sc)):
        ok = wall < 1.0 and cpu / n * 1000 <= COLLECTD_CPU_PER_1000
        print(f"  target (steady) {what}: < 1 s wall and <= {COLLECTD_CPU_PER_1000} cpu-s/1000 "
              f"values: {'met' if ok else 'NOT met'} ({wall:.3f} s, {cpu / n * 1000:.4f})")


if __name__ == "__main__":
    main()
