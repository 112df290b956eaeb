"""Every gnocchiclient command the API covers, against an appliance holding every resource type.

The appliance polls its host (host, disks, NICs, filesystems), libvirt's test:///default
(instances with their disks and NICs), a hwmon fixture tree (sensors) and a real net-snmp
snmpd (SNMP device and its tables); generic resources are pushed with the CLI. Each command
(``resource batch delete`` included) runs with its default arguments, as a person types it
(table output), and with the usual options (``-f json`` to assert on what it printed).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import RunningAppliance, wait_for
from tests.snmp.agents import snmpd

GNOCCHI = str(Path(sys.executable).with_name("gnocchi"))
HWMON = Path(__file__).parent / "fixtures/hwmon/amd-x570/sys/class/hwmon"
COMMUNITY = "clitest"
#: Every resource type the appliance's pollsters create here.
POLLED_TYPES = {
    "host", "host_disk", "host_network_interface", "host_filesystem",
    "instance", "instance_disk", "instance_network_interface",
    "sensor", "snmp_device", "snmp_interface",
}
#: The generic keys as the CLI lists them (it drops metrics and created_by_*).
GENERIC_COLUMNS = {
    "id", "type", "original_resource_id", "started_at", "ended_at", "revision_start",
    "revision_end", "creator", "user_id", "project_id",
}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with snmpd(tmp_path_factory.mktemp("snmpd"), COMMUNITY, []) as port:
        appliance = RunningAppliance(tmp_path_factory.mktemp("cli"), {"pollsters": {
            "host": {"interval": 2},
            "sensors": {"interval": 2, "hwmon_root": str(HWMON), "lm_sensors": False,
                        "thermal_root": str(HWMON / "no-thermal")},
            "libvirt": {"interval": 2, "uri": "test:///default"},
            "snmp": {"interval": 2, "targets": [
                {"name": "snmpd", "host": "127.0.0.1", "port": port, "community": COMMUNITY},
            ]},
        }})
        appliance.start()
        try:
            wait_for(lambda: _types(appliance) >= POLLED_TYPES, timeout=60,
                     what="a resource of every polled type")
            yield appliance
        finally:
            appliance.stop()


def run(app, *args: str, stdin: str | None = None, check: bool = True):
    proc = subprocess.run(
        [GNOCCHI, "--endpoint", app.url, f"--user={app.token}", *args],
        capture_output=True, text=True, timeout=60, input=stdin,
    )
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def cli(app, *args: str, stdin: str | None = None):
    """The command's JSON output, parsed."""
    out = run(app, *args, "-f", "json", stdin=stdin).stdout
    return json.loads(out) if out.strip() else None


def read(app, *args: str):
    """A read-only command as typed (table output, must succeed), then its JSON, parsed."""
    run(app, *args)
    return cli(app, *args)


def _types(app) -> set[str]:
    proc = run(app, "resource", "list", "-f", "json", check=False)
    return {r["type"] for r in json.loads(proc.stdout)} if proc.returncode == 0 else set()


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(ts))


def test_generic_listing_and_search_show_generic_attributes(app):
    listed = read(app, "resource", "list")
    assert {r["type"] for r in listed} >= POLLED_TYPES
    assert all(set(r) == GENERIC_COLUMNS for r in listed)

    detailed = read(app, "resource", "list", "--details")
    keys = set(detailed[0])
    assert {"host_name", "device_name", "mountpoint", "chip", "vcpus"} <= keys
    assert all(set(r) == keys for r in detailed)
    disk = next(r for r in detailed if r["type"] == "host_disk")
    assert disk["device_name"] and disk["vcpus"] is None

    found = read(app, "resource", "search", "host_name=localhost")
    assert found and all(set(r) == GENERIC_COLUMNS for r in found)
    assert read(app, "resource", "search", "--details", "type=sensor")[0]["chip"]

    page = read(app, "resource", "list", "--limit", "3", "--sort", "type:desc")
    assert len(page) == 3 and page[0]["type"] >= page[-1]["type"]
    after = read(app, "resource", "list", "--limit", "3", "--marker", page[0]["id"],
                "--sort", "type:desc")
    assert page[0]["id"] not in {r["id"] for r in after}
    read(app, "resource", "list", "--history")


@pytest.mark.parametrize("type_", sorted(POLLED_TYPES))
def test_every_type_lists_shows_searches_and_has_history(app, type_):
    rows = read(app, "resource", "list", "--type", type_)
    assert rows and {r["type"] for r in rows} == {type_}
    declared = read(app, "resource-type", "show", type_)
    attributes = {k.split("/", 1)[1] for k in declared if k.startswith("attributes/")}
    assert attributes and attributes <= set(rows[0])
    rid = rows[0]["id"]
    shown = read(app, "resource", "show", "--type", type_, rid)
    assert shown["id"] == rid and shown["metrics"]
    assert read(app, "resource", "show", rid)["type"] == type_
    found = read(app, "resource", "search", "--type", type_, f"id={rid}")
    assert [r["id"] for r in found] == [rid]
    history = read(app, "resource", "history", "--type", type_, rid)
    assert history[-1]["id"] == rid and history[-1]["revision_end"] is None
    assert read(app, "resource", "history", rid)[-1]["id"] == rid

    name, mid = sorted(shown["metrics"].items())[0]
    metric = read(app, "metric", "show", "--resource-id", rid, name)
    assert metric["id"] == mid
    measures = wait_for(
        lambda: read(app, "measures", "show", "--resource-id", rid, name), timeout=100,
        what=f"a measure of {type_}'s {name}",  # a rate needs two polls, a complete minute
    )
    assert {"timestamp", "granularity", "value"} == set(measures[0])


def test_resource_types_and_capabilities_and_status(app):
    types = {t["name"] for t in read(app, "resource-type", "list")}
    assert POLLED_TYPES | {"generic"} <= types
    assert "attributes/host_name" in read(app, "resource-type", "show", "host")
    caps = read(app, "capabilities", "list")
    assert "mean" in caps["aggregation_methods"]
    status = read(app, "status")
    assert status["storage/number of metric having measures to process"] == 0
    assert read(app, "server", "version")["version"]


def test_generic_resource_lifecycle(app):
    created = cli(app, "resource", "create", "pushed-box", "-n", "temp:low", "-n", "hum")
    rid = created["id"]
    assert created["original_resource_id"] == "pushed-box"
    assert set(created["metrics"]) == {"temp", "hum"}
    run(app, "resource", "delete", rid)

    created = cli(app, "resource", "create", "--type", "generic", "pushed-box2",
                  "-n", "temp:low")
    rid = created["id"]
    spare = cli(app, "metric", "create", "-a", "low")["id"]
    updated = cli(app, "resource", "update", rid, "-n", "power:medium", "-d", "temp")
    assert set(updated["metrics"]) == {"power"}
    kept = cli(app, "resource", "update", rid, "-m", f"spare:{spare}")
    assert set(kept["metrics"]) == {"power", "spare"}
    host = read(app, "resource", "list", "--type", "host")[0]
    renamed = cli(app, "resource", "update", "--type", "host", host["id"],
                  "-a", "host_name:renamed")
    assert renamed["host_name"] == "renamed"
    assert len(read(app, "resource", "history", "--type", "host", host["id"])) >= 2
    run(app, "resource", "delete", rid)
    gone = run(app, "resource", "show", rid, check=False)
    assert gone.returncode != 0 and "not" in gone.stderr.lower()

    for i in range(3):
        cli(app, "resource", "create", f"batch-{i}", "-a", f"user_id:{'u9' if i < 2 else 'u8'}")
    assert cli(app, "resource", "batch", "delete", "user_id=u9") == {"deleted": 2}
    assert [r["original_resource_id"] for r in read(app, "resource", "search", "user_id=u8")
            ] == ["batch-2"]


def test_metrics_and_measures(app):
    m = cli(app, "metric", "create", "--archive-policy-name", "medium", "--unit", "W", "p1")
    mid = m["id"]
    assert m["archive_policy/name"] == "medium" or m.get("archive_policy_name") == "medium"
    m2 = cli(app, "metric", "create", "-a", "medium", "p2")["id"]
    assert mid in {x["id"] for x in read(app, "metric", "list")}
    assert len(read(app, "metric", "list", "--limit", "1")) == 1
    read(app, "metric", "list", "--sort", "name:asc")
    assert read(app, "metric", "show", mid)["unit"] == "W"

    now = int(time.time()) // 60 * 60
    run(app, "measures", "add", "-m", f"{iso(now - 180)}@1", "-m", f"{iso(now - 120)}@2",
        "-m", f"{iso(now - 60)}@3", mid)
    run(app, "measures", "batch-metrics", "-",
        stdin=json.dumps({m2: [{"timestamp": iso(now - 180 + i * 60), "value": 10 * (i + 1)}
                               for i in range(3)]}))
    shown = read(app, "measures", "show", mid)
    assert [p["value"] for p in shown if p["granularity"] == 60.0] == [1.0, 2.0, 3.0]
    shown = read(app, "measures", "show", "--granularity", "60", "--aggregation", "max",
                "--start", iso(now - 120), "--stop", iso(now), "--refresh", mid)
    assert [p["value"] for p in shown] == [2.0, 3.0]
    resampled = read(app, "measures", "show", "--granularity", "60", "--resample", "3600",
                    mid)
    assert len(resampled) in (1, 2)

    agg = read(app, "measures", "aggregation", "-m", mid, m2, "--granularity", "60")
    assert [p["value"] for p in agg] == [5.5, 11.0, 16.5]
    agg = read(app, "measures", "aggregation", "-m", mid, m2, "--granularity", "60",
              "--reaggregation", "max", "--needed-overlap", "0", "--fill", "0")
    assert [p["value"] for p in agg] == [10.0, 20.0, 30.0]

    ops = read(app, "aggregates", "--granularity", "60", f"(+ (metric {mid} mean) 1)")
    assert [p["value"] for p in ops] == [2.0, 3.0, 4.0]
    ops = read(app, "aggregates", "--granularity", "60", "--needed-overlap", "0",
              "--start", iso(now - 120), f"(aggregate max (metric ({mid} mean) ({m2} mean)))")
    assert [p["value"] for p in ops] == [20.0, 30.0]

    run(app, "metric", "delete", mid, m2)
    assert run(app, "metric", "show", mid, check=False).returncode != 0


def test_resource_metrics_batch_and_aggregation_by_resources(app):
    now = int(time.time()) // 60 * 60
    rids = [cli(app, "resource", "create", f"room-{i}", "-a", "user_id:u1")["id"]
            for i in range(2)]
    batch = {rid: {"temp": {"archive_policy_name": "medium",
                            "measures": [{"timestamp": iso(now - 60), "value": 20 + i}]}}
             for i, rid in enumerate(rids)}
    run(app, "measures", "batch-resources-metrics", "--create-metrics", "-",
        stdin=json.dumps(batch))
    for i, rid in enumerate(rids):
        got = read(app, "measures", "show", "--resource-id", rid, "--granularity", "60", "temp")
        assert [p["value"] for p in got] == [20.0 + i]
    run(app, "measures", "add", "--resource-id", rids[0], "-m", f"{iso(now)}@30", "temp")

    query = f"id in [{rids[0]}, {rids[1]}]"
    agg = read(app, "measures", "aggregation", "-m", "temp", "--query", query,
              "--granularity", "60", "--needed-overlap", "0")
    assert [p["value"] for p in agg][:1] == [20.5]
    groups = read(app, "measures", "aggregation", "-m", "temp", "--query", query,
                 "--granularity", "60", "--groupby", "id", "--needed-overlap", "0")
    assert {g["group"] for g in groups} == {f"id: {rid}" for rid in rids} or len(groups) == 2

    ops = read(app, "aggregates", "--resource-type", "generic", "--granularity", "60",
              "--groupby", "user_id", "(aggregate mean (metric temp mean))", query)
    assert ops and all(row["group"] == "user_id: u1" or "u1" in str(row) for row in ops)

    for rid in rids:
        run(app, "resource", "delete", rid)


def test_archive_policies_and_rules(app):
    names = {p["name"] for p in read(app, "archive-policy", "list")}
    assert {"low", "medium", "high"} <= names
    low = read(app, "archive-policy", "show", "low")
    assert low["name"] == "low"
    created = cli(app, "archive-policy", "create", "-d", "granularity:1m,timespan:1d",
                  "-m", "mean", "-m", "last", "-b", "0", "cli-policy")
    assert created["name"] == "cli-policy"
    updated = cli(app, "archive-policy", "update", "-d", "granularity:1m,timespan:2d",
                  "cli-policy")
    assert updated["definition"][0]["timespan"] == "2 days, 0:00:00"

    rule = cli(app, "archive-policy-rule", "create", "-a", "cli-policy", "-m", "cli.*",
               "cli-rule")
    assert rule["metric_pattern"] == "cli.*"
    assert "cli-rule" in {r["name"] for r in read(app, "archive-policy-rule", "list")}
    assert read(app, "archive-policy-rule", "show", "cli-rule")["archive_policy_name"] == \
        "cli-policy"
    renamed = cli(app, "archive-policy-rule", "update", "cli-rule", "-n", "cli-rule2")
    assert renamed["name"] == "cli-rule2"
    assert run(app, "archive-policy-rule", "show", "cli-rule", check=False).returncode != 0
    run(app, "archive-policy-rule", "delete", "cli-rule2")
    run(app, "archive-policy", "delete", "cli-policy")
    assert "cli-policy" not in {p["name"] for p in read(app, "archive-policy", "list")}
