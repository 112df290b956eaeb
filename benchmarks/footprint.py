"""The whole appliance's memory and CPU with every source on, against collectd in the same run.

What runs: ``appliance run`` for real (supervisord, rrdcached, gunicorn, the agents, the
alarm evaluator) with every source on: 100 libvirt test-driver domains, a hwmon fixture
tree, 20 SNMP devices (snmpsim, one community per device, 20 interfaces each) and the host,
all at a 60 s interval. Printed:

1. PSS and RSS of every process of the appliance and in total (``/proc/PID/smaps_rollup``:
   PSS splits a page shared by N processes into N parts, so the total is what the box
   really spends), once two poll cycles have run ("loaded");
2. CPU of all of them as % of one core over the next two cycles;
3. PSS right after an API burst (1000 new metrics x 60 points through
   ``/v1/batch/metrics/measures``, 200 GETs, ``/v1/aggregates`` across 100 and 1000
   metrics) and again one minute later.

Baseline in the same run: collectd (Debian's ``collectd-core``) with the virt, snmp and
rrdtool plugins (plus cpu, memory, load, interface, disk, df for the host) on the same
domains and devices, its PSS and CPU measured the same way, and the ratio printed.
collectd reads no hwmon fixture (its sensors plugin reads the real /sys through
libsensors), so the appliance does a little more work than its baseline.

Targets (issue 14): <= 150 MB PSS loaded, <= 2% of one core, <= 190 MB right after the
burst and back within 10% of loaded a minute later.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests

# The repo root instead of benchmarks/, whose libvirt.py would shadow the libvirt module.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from appliance.config import ApiSettings  # noqa: E402
from tests.conftest import RunningAppliance  # noqa: E402
from tests.snmp import recordings as rec  # noqa: E402  (the tests' recording generator)
from tests.snmp.agents import snmpsim  # noqa: E402
from tests.test_libvirt import write_node  # noqa: E402  (the tests' domain generator)

HWMON = Path(__file__).resolve().parent.parent / "tests/fixtures/hwmon/amd-x570/sys/class/hwmon"
MB = 1024 * 1024
TARGET_LOADED_MB, TARGET_BURST_MB, TARGET_CPU_PCT = 150, 190, 2.0


def smaps(pid: int) -> tuple[int, int, int]:
    """(PSS, RSS, USS) in bytes of one process; USS is what only this process holds."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value, *_ = line.split()
        fields[key.rstrip(":")] = int(value) * 1024
    return fields["Pss"], fields["Rss"], fields["Private_Clean"] + fields["Private_Dirty"]


def tree(root: psutil.Process) -> list[psutil.Process]:
    return [root, *root.children(recursive=True)]


def label(proc: psutil.Process) -> str:
    """A short name: the program's own words, without the interpreter and the paths."""
    cmd = proc.cmdline()
    if len(cmd) == 1 and ": " in cmd[0]:  # a process that set its own title
        return cmd[0].split(" [")[0].strip()
    words = [w for w in cmd if not w.startswith(("/", "-")) and w not in ("appliance",)]
    if words[:1] == ["run"]:  # supervisord runs in the process of `appliance run`
        return "supervisord (appliance run)"
    return " ".join(words[:4]) or proc.name()


def memory(root: psutil.Process, title: str, detail: bool) -> float:
    """Print PSS/RSS per process and in total; return the total PSS in MB."""
    total_pss = total_rss = 0
    rows = []
    for proc in tree(root):
        try:
            pss, rss, uss = smaps(proc.pid)
            rows.append((proc.pid, label(proc), pss, rss, uss))
        except (OSError, psutil.Error):
            continue  # exited meanwhile
        total_pss += pss
        total_rss += rss
    print(f"{title}: {len(rows)} processes, PSS {total_pss / MB:.1f} MB,"
          f" RSS {total_rss / MB:.1f} MB")
    if detail:
        for pid, name, pss, rss, uss in rows:
            print(f"    {pid:>7}  PSS {pss / MB:6.1f} MB  RSS {rss / MB:6.1f} MB"
                  f"  USS {uss / MB:6.1f} MB  {name}")
    return total_pss / MB


def cpu_seconds(root: psutil.Process) -> float:
    total = 0.0
    for proc in tree(root):
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


def cpu_percent(root: psutil.Process, seconds: float) -> float:
    """CPU of the whole tree as % of one core over ``seconds`` of wall time."""
    before, t0 = cpu_seconds(root), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(root) - before) / (time.monotonic() - t0) * 100


def burst(app: RunningAppliance, t0: int) -> None:
    """1000 new metrics x 60 points in one batch, 200 GETs of a day, aggregates of a day
    across 100 and 1000 metrics: the requests that leave a worker holding the most."""
    session = requests.Session()
    session.headers.update(app.headers)
    body = {"archive_policy_name": "medium", "name": "burst.load"}
    ids = [session.post(f"{app.url}/v1/metric", json=body).json()["id"] for _ in range(1000)]
    batch = {mid: [{"timestamp": t0 + 60 * k, "value": float(k)} for k in range(60)]
             for mid in ids}
    session.post(f"{app.url}/v1/batch/metrics/measures", json=batch).raise_for_status()
    day = {"granularity": 60, "start": t0 + 3600 - 86400, "stop": t0 + 3600}
    for mid in ids[:200]:
        session.get(f"{app.url}/v1/metric/{mid}/measures", params=day).raise_for_status()
    for k in (100, 1000):
        refs = " ".join(f"({mid} mean)" for mid in ids[:k])
        r = session.post(f"{app.url}/v1/aggregates", params=day,
                         json={"operations": f"(aggregate mean (metric {refs}))"})
        r.raise_for_status()


def appliance_run(tmp: Path, uri: str, sim_port: int, communities: list[str],
                  interval: int) -> dict[str, float]:
    targets = [{"name": c, "host": "127.0.0.1", "port": sim_port, "community": c}
               for c in communities]
    app = RunningAppliance(tmp / "appliance", {
        # The shipped default worker count, not the test fixture's 2.
        "api": {"workers": ApiSettings().workers},
        "pollsters": {
            "host": {"enabled": True, "interval": interval},
            "sensors": {"enabled": True, "interval": interval, "hwmon_root": str(HWMON)},
            "libvirt": {"enabled": True, "interval": interval, "uri": uri},
            "snmp": {"interval": interval, "targets": targets},
        },
        "alarms": {"evaluation_interval": interval},
    })
    app.start()
    try:
        root = psutil.Process(app.proc.pid)
        time.sleep(2 * interval + 5)  # two cycles: every file created, caches filled
        out = {"loaded": memory(root, "appliance, loaded", detail=True)}
        out["cpu"] = cpu_percent(root, 2 * interval)
        print(f"appliance CPU over two cycles: {out['cpu']:.2f}% of one core")
        started = time.monotonic()
        burst(app, (int(time.time()) // 60 - 120) * 60)
        print(f"API burst took {time.monotonic() - started:.1f} s")
        out["burst"] = memory(root, "appliance, right after the burst", detail=True)
        time.sleep(60)
        out["after"] = memory(root, "appliance, one minute later", detail=True)
        return out
    finally:
        app.stop()


COLLECTD_CONF = """\
Interval {interval}
BaseDir "{base}"
PIDFile "{base}/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin logfile
<Plugin logfile>
  File "{base}/collectd.log"
  LogLevel warning
</Plugin>
LoadPlugin cpu
LoadPlugin memory
LoadPlugin load
LoadPlugin interface
LoadPlugin disk
LoadPlugin df
LoadPlugin virt
<Plugin virt>
  Connection "{uri}"
  RefreshInterval {interval}
  HostnameFormat name
</Plugin>
LoadPlugin snmp
<Plugin snmp>
  <Data "if_octets">
    Type "if_octets"
    Table true
    Instance "1.3.6.1.2.1.2.2.1.2"
    Values "1.3.6.1.2.1.31.1.1.1.6" "1.3.6.1.2.1.31.1.1.1.10"
  </Data>
  <Data "if_packets">
    Type "if_packets"
    Table true
    Instance "1.3.6.1.2.1.2.2.1.2"
    Values "1.3.6.1.2.1.31.1.1.1.7" "1.3.6.1.2.1.31.1.1.1.11"
  </Data>
  <Data "if_errors">
    Type "if_errors"
    Table true
    Instance "1.3.6.1.2.1.2.2.1.2"
    Values "1.3.6.1.2.1.2.2.1.14" "1.3.6.1.2.1.2.2.1.20"
  </Data>
  <Data "if_dropped">
    Type "if_dropped"
    Table true
    Instance "1.3.6.1.2.1.2.2.1.2"
    Values "1.3.6.1.2.1.2.2.1.13" "1.3.6.1.2.1.2.2.1.19"
  </Data>
  <Data "uptime">
    Type "uptime"
    Table false
    Instance "uptime"
    Values "1.3.6.1.2.1.1.3.0"
  </Data>
{hosts}
</Plugin>
LoadPlugin rrdtool
<Plugin rrdtool>
  DataDir "{base}/rrd"
</Plugin>
"""

COLLECTD_HOST = """\
  <Host "{name}">
    Address "127.0.0.1:{port}"
    Version 2
    Community "{name}"
    Collect "if_octets" "if_packets" "if_errors" "if_dropped" "uptime"
    Interval {interval}
  </Host>"""


def collectd_run(tmp: Path, uri: str, sim_port: int, communities: list[str],
                 interval: int) -> dict[str, float]:
    base = tmp / "collectd"
    (base / "rrd").mkdir(parents=True)
    hosts = "\n".join(COLLECTD_HOST.format(name=c, port=sim_port, interval=interval)
                      for c in communities)
    conf = base / "collectd.conf"
    conf.write_text(COLLECTD_CONF.format(interval=interval, base=base, uri=uri, hosts=hosts))
    with (base / "collectd.out").open("w") as out:  # libvirt prints its errors to stderr
        proc = subprocess.Popen(["collectd", "-f", "-C", str(conf)], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        root = psutil.Process(proc.pid)
        time.sleep(2 * interval + 5)
        files = sum(1 for _ in (base / "rrd").rglob("*.rrd"))
        print(f"collectd wrote {files} RRD files")
        log = (base / "collectd.log").read_text(errors="replace").strip().splitlines()
        for line in log[-5:]:
            print(f"    collectd log: {line}")
        out = {"loaded": memory(root, "collectd, loaded", detail=True)}
        out["cpu"] = cpu_percent(root, 2 * interval)
        print(f"collectd CPU over two cycles: {out['cpu']:.2f}% of one core")
        return out
    finally:
        proc.terminate()  # collectd may take its time over writing its cached values
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # figures as they come, even into a file
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=int, default=60)
    parser.add_argument("--domains", type=int, default=100)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--interfaces", type=int, default=20)
    parser.add_argument("--skip-collectd", action="store_true", help="Only the appliance.")
    args = parser.parse_args()
    if not args.skip_collectd and shutil.which("collectd") is None:
        sys.exit("collectd is not installed (apt-get install collectd-core)")

    communities = [f"dev{i:03d}" for i in range(args.devices)]
    data = {c: rec.render(rec.system(f"Switch {c}") + rec.interfaces(args.interfaces, hc=True))
            for c in communities}
    with tempfile.TemporaryDirectory() as name, snmpsim(data, communities[0]) as sim:
        tmp = Path(name)
        uri = write_node(tmp, args.domains)
        print(f"every source on: {args.domains} libvirt test-driver domains, {args.devices} "
              f"SNMP devices x {args.interfaces} interfaces, hwmon fixture, host; "
              f"interval {args.interval} s")
        app = appliance_run(tmp, uri, sim.port, communities, args.interval)
        base = None if args.skip_collectd else collectd_run(
            tmp, uri, sim.port, communities, args.interval)

    print()
    print(f"appliance loaded PSS {app['loaded']:.1f} MB (target <= {TARGET_LOADED_MB})"
          f"  CPU {app['cpu']:.2f}% of one core (target <= {TARGET_CPU_PCT})")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    back = (app["after"] - app["loaded"]) / app["loaded"] * 100
    print(f"after the burst {app['burst']:.1f} MB (target <= {TARGET_BURST_MB}); "
          f"a minute later {app['after']:.1f} MB, {back:+.1f}% of loaded (target <= +10%)")
    if base:
        print(f"collectd PSS {base['loaded']:.1f} MB, CPU {base['cpu']:.2f}% of one core;"
              f" ratio appliance/collectd: PSS {app['loaded'] / base['loaded']:.1f}x,"
              f" CPU {app['cpu'] / max(base['cpu'], 1e-6):.1f}x")


if __name__ == "__main__":
    main()
