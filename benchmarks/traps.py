"""The SNMP trap receiver's memory: what the ``workers`` parent pays to import it, and what
the forked ``snmp-traps`` process holds of its own while receiving, v2c receiver vs pysnmp's.

1. Import cost: a fresh interpreter imports ``appliance.snmp_programs`` (the parent needs it
   for both SNMP programs anyway), then the trap modules ``programs.job`` preloads for a
   v2c-only config (or, with ``--before PATH``, what an older tree's ``_job`` imported:
   ``appliance.pollsters.snmp.traps``); ``Anonymous`` from ``/proc/self/smaps_rollup``
   before and after, median of 5 interpreters. Also the import alone in a bare
   interpreter.
2. The receiver: a real ``workers`` parent (``programs.job`` preloads, ``gc.freeze``, fork)
   with one v2c target, or with a v3 target too (pysnmp's receiver, pysnmp preloaded in
   the parent as ``_job`` does then). ``--traps`` v2c linkDown traps from net-snmp's
   ``snmptrap``, each an event in the index; then the child's USS (private pages:
   what it costs beyond what it shares with the parent) and PSS; with ``--before``, the
   older tree's receiver too (v2c targets only: it was pysnmp's).

    PYTHONPATH=. .venv/bin/python benchmarks/traps.py [--traps 200] [--before /tmp/old]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MB = 1024 * 1024
NEW_IMPORTS = "appliance.pollsters.snmp.traps, appliance.pollsters.snmp.traps_v2c"
OLD_IMPORTS = "appliance.pollsters.snmp.traps"
LINK_DOWN, IF_TABLE = "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1"
ANON = """\
import gc, sys
def anon():
    gc.collect()
    for line in open("/proc/self/smaps_rollup"):
        if line.startswith("Anonymous:"):
            return int(line.split()[1]) * 1024
{preload}
before = anon()
import {imports}
print(anon() - before)
"""
WORKERS = """\
import sys
from pathlib import Path
from appliance import programs, workers
from appliance.clisettings import load_settings
settings = load_settings(Path(sys.argv[1]), None)
job = programs.job(settings, "snmp-traps")
workers.freeze_imports()
sys.exit(workers.supervise([workers.Worker("snmp-traps", job)], "traps-benchmark"))
"""


def import_cost(tree: Path, imports: str, preload: str, runs: int = 5) -> float:
    """Median anonymous MB that importing ``imports`` adds in a fresh interpreter."""
    code = ANON.format(preload=preload, imports=imports)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    got = [int(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                              capture_output=True, text=True, cwd=tree).stdout)
           for _ in range(runs)]
    return statistics.median(got) / MB


def smaps(pid: int) -> tuple[float, float]:
    """(USS, PSS) in MB of one process."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value, *_ = line.split()
        fields[key.rstrip(":")] = int(value) * 1024
    return (fields["Private_Clean"] + fields["Private_Dirty"]) / MB, fields["Pss"] / MB


def receiver(tmp: Path, v3: bool, traps: int, tree: Path = ROOT) -> tuple[float, float, str]:
    """(USS, PSS, receiver named in its log) of the forked snmp-traps after ``traps``, the
    appliance's code from ``tree``."""
    from appliance.index import Index

    port = _free_udp_port()
    targets = [{"name": "sw1", "host": "127.0.0.1", "community": "bench"}]
    if v3:
        targets.append({"name": "ups", "host": "127.0.0.1", "version": "3", "user": "u",
                        "auth_protocol": "SHA", "auth_key": "auth-pass-1",
                        "priv_protocol": "AES", "priv_key": "priv-pass-1",
                        "engine_id": "0x80001f8880aabbccddeeff0011"})
    config = tmp / "appliance.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp / "data"), "pollsters": {"snmp": {
        "traps": {"listen": f"127.0.0.1:{port}"}, "targets": targets}}}))
    log = tmp / "workers.log"
    with log.open("w") as out:
        parent = subprocess.Popen([sys.executable, "-c", WORKERS, str(config)],
                                  stdout=out, stderr=subprocess.STDOUT, cwd=tree,
                                  env={**os.environ, "PYTHONPATH": str(tree)})
    try:
        _until(lambda: "listening on" in log.read_text())
        env = {**os.environ, "MIBS": ""}
        for _ in range(traps):
            subprocess.run(["snmptrap", "-v2c", "-c", "bench", f"127.0.0.1:{port}", "",
                            LINK_DOWN, f"{IF_TABLE}.1.3", "i", "3", f"{IF_TABLE}.8.3", "i",
                            "2"], env=env, check=True, capture_output=True)
        index = Index(tmp / "data" / "index.sqlite")

        def events() -> int:
            rows = [r for r in index.source_status() if r["source"] == "snmp-traps"]
            return rows[0]["detail"]["events"] if rows else 0

        _until(lambda: events() >= traps)
        index.close()
        [child] = psutil.Process(parent.pid).children()
        uss, pss = smaps(child.pid)
    finally:
        parent.send_signal(signal.SIGTERM)
        parent.wait(20)
    text = log.read_text()
    kind = "v2c" if "(v2c receiver)" in text else "pysnmp"  # the old tree names neither
    return uss, pss, kind


def _free_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _until(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traps", type=int, default=200)
    parser.add_argument("--before", type=Path, help="an older tree (git archive) to compare")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    preload = "import appliance.snmp_programs"
    print("import cost in the parent (anonymous MB, median of 5 interpreters):")
    if args.before:
        print(f"  before: {import_cost(args.before, OLD_IMPORTS, preload):6.1f} over "
              f"snmp_programs, {import_cost(args.before, OLD_IMPORTS, ''):6.1f} bare")
    print(f"  now:    {import_cost(ROOT, NEW_IMPORTS, preload):6.1f} over snmp_programs, "
          f"{import_cost(ROOT, NEW_IMPORTS, ''):6.1f} bare")
    print(f"the forked snmp-traps after {args.traps} v2c traps (MB):")
    runs = [("now", ROOT, False), ("now", ROOT, True)]
    if args.before:
        runs = [("before", args.before, False), *runs]
    for label, tree, v3 in runs:
        with tempfile.TemporaryDirectory() as tmp:
            uss, pss, kind = receiver(Path(tmp), v3, args.traps, tree)
        print(f"  {label:6} {kind:6} receiver{' (a v3 target)' if v3 else ''}: "
              f"USS {uss:5.1f}, PSS {pss:5.1f}")


if __name__ == "__main__":
    main()
