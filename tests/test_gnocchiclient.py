"""The real `gnocchi` CLI (gnocchiclient, default gnocchi-basic auth) against `appliance run`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import RunningAppliance, wait_for

GNOCCHI = str(Path(sys.executable).with_name("gnocchi"))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    appliance = RunningAppliance(tmp_path_factory.mktemp("gnocchiclient"))
    appliance.start()
    yield appliance
    appliance.stop()


def gnocchi(app, *args: str, token: str | None = None, check: bool = True):
    """Run the CLI; JSON output parsed when the command prints any."""
    proc = subprocess.run(
        [GNOCCHI, "--endpoint", app.url, f"--user={token or app.token}", *args],
        capture_output=True, text=True, timeout=60,
    )
    if check:
        assert proc.returncode == 0, (args, proc.stderr)
        return json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc


def minute() -> int:
    return int(time.time()) // 60 * 60


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(ts))


def test_status_and_archive_policies(app):
    status = gnocchi(app, "status", "-f", "json")
    assert status["storage/number of metric having measures to process"] == 0
    names = {p["name"] for p in gnocchi(app, "archive-policy", "list", "-f", "json")}
    assert {"low", "medium", "high"} <= names
    created = gnocchi(app, "archive-policy", "create", "-d", "granularity:1s,points:60",
                      "-d", "granularity:1m,timespan:1h", "-m", "mean", "-m", "max",
                      "fast", "-f", "json")
    assert created["name"] == "fast"
    shown = gnocchi(app, "archive-policy", "show", "fast", "-f", "json")
    assert sorted(shown["aggregation_methods"]) == ["max", "mean"]
    assert [d["granularity"] for d in shown["definition"]] == ["0:00:01", "0:01:00"]


def test_metric_lifecycle_and_measures(app):
    m = gnocchi(app, "metric", "create", "--archive-policy-name", "medium", "--unit", "W",
                "pushed.power", "-f", "json")
    mid = m["id"]
    shown = gnocchi(app, "metric", "show", mid, "-f", "json")
    assert shown["name"] == "pushed.power" and shown["unit"] == "W"
    assert mid in {x["id"] for x in gnocchi(app, "metric", "list", "-f", "json")}

    now = minute()
    gnocchi(app, "measures", "add", "-m", f"{iso(now - 120)}@10", "-m", f"{iso(now - 60)}@20",
            mid)
    # Readable in the very next request: no asynchronous backlog.
    got = gnocchi(app, "measures", "show", "--granularity", "60", mid, "-f", "json")
    assert [(p["timestamp"], p["value"]) for p in got] == [
        (iso(now - 120), 10.0), (iso(now - 60), 20.0)
    ]
    batch = {mid: [{"timestamp": iso(now), "value": 30}]}
    proc = subprocess.run(
        [GNOCCHI, "--endpoint", app.url, f"--user={app.token}", "measures", "batch-metrics", "-"],
        input=json.dumps(batch), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    got = gnocchi(app, "measures", "show", "--granularity", "60", "--aggregation", "max", mid,
                  "-f", "json")
    assert got[-1]["value"] == 30.0

    agg = gnocchi(app, "aggregates", "--granularity", "60",
                  f"(* (metric {mid} mean) 2)", "-f", "json")
    assert [row["value"] for row in agg] == [20.0, 40.0, 60.0]

    gnocchi(app, "metric", "delete", mid)
    proc = gnocchi(app, "metric", "show", mid, check=False)
    assert proc.returncode != 0 and "does not exist" in proc.stderr


def test_metric_list_pages_through_link_next(app):
    ids = {gnocchi(app, "metric", "create", "--archive-policy-name", "low", "-f", "json")["id"]
           for _ in range(3)}
    listed = gnocchi(app, "metric", "list", "--limit", "2", "-f", "json")
    assert len(listed) == 2
    everything = {m["id"] for m in gnocchi(app, "metric", "list", "-f", "json")}
    assert ids <= everything


def test_resources_search_history_and_batch(app):
    host = wait_for(
        lambda: gnocchi(app, "resource", "list", "--type", "host", "-f", "json"),
        timeout=30, what="the host pollster's resource",
    )[0]
    shown = gnocchi(app, "resource", "show", "--type", "host", host["id"], "-f", "json")
    assert shown["id"] == host["id"]
    found = gnocchi(app, "resource", "search", "--type", "host",
                    f"host_name = '{shown['host_name']}'", "-f", "json")
    assert [r["id"] for r in found] == [host["id"]]
    history = gnocchi(app, "resource", "history", "--type", "host", host["id"], "-f", "json")
    assert history and history[-1]["id"] == host["id"]

    created = gnocchi(app, "resource", "create", "--type", "generic", "pushed-thing",
                      "-n", "temp:medium", "-f", "json")
    rid = created["id"]
    now = minute()
    # An RRD bucket is known once a measure reaches its end: align to the 5-minute step.
    five = int(time.time()) // 300 * 300
    batch = {rid: {"temp": [{"timestamp": iso(now - 60), "value": 21.5}],
                   "humidity": {"archive_policy_name": "low",
                                "measures": [{"timestamp": iso(five - 300), "value": 40}]}}}
    proc = subprocess.run(
        [GNOCCHI, "--endpoint", app.url, f"--user={app.token}", "measures",
         "batch-resources-metrics", "--create-metrics", "-"],
        input=json.dumps(batch), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    got = gnocchi(app, "measures", "show", "--resource-id", rid, "--granularity", "300",
                  "humidity", "-f", "json")
    assert [p["value"] for p in got] == [40.0]

    extra = gnocchi(app, "metric", "create", "--resource-id", rid, "--archive-policy-name",
                    "low", "extra", "-f", "json")
    assert extra["name"] == "extra"
    agg = gnocchi(app, "aggregates", "--resource-type", "generic", "--granularity", "60",
                  "(aggregate mean (metric temp mean))", "id = '" + rid + "'", "-f", "json")
    assert [row["value"] for row in agg] == [21.5]


def test_reader_token_reads_but_cannot_write(app):
    out = subprocess.run(
        [sys.executable, "-m", "appliance", "token", "--config", str(app.config_path),
         "--data-dir", str(app.data_dir), "create", "ro", "--role", "reader"],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0, out.stderr
    reader = out.stdout.strip()
    listed = subprocess.run(
        [sys.executable, "-m", "appliance", "token", "--config", str(app.config_path),
         "--data-dir", str(app.data_dir), "list"],
        capture_output=True, text=True, timeout=30,
    ).stdout
    assert "ro" in listed and reader not in listed

    def readable():
        return requests.get(f"{app.url}/v1/metric", timeout=5,
                            headers={"Authorization": f"Bearer {reader}"}).ok

    wait_for(readable, timeout=10, what="the new reader token to be accepted")
    assert gnocchi(app, "archive-policy", "list", "-f", "json", token=reader)
    proc = gnocchi(app, "metric", "create", "--archive-policy-name", "low", token=reader,
                   check=False)
    assert proc.returncode != 0 and "403" in proc.stderr + proc.stdout

    subprocess.run(
        [sys.executable, "-m", "appliance", "token", "--config", str(app.config_path),
         "--data-dir", str(app.data_dir), "revoke", "ro"],
        check=True, capture_output=True, timeout=30,
    )
    wait_for(lambda: not readable(), timeout=10, what="the revoked token to be refused")
