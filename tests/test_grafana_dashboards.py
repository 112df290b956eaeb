"""Every panel of grafana/dashboards/ answers, with data, from a running appliance.

The appliance runs for real (``appliance run``: supervisord, rrdcached, gunicorn, agents)
with every source on: the host (psutil), a fixture hwmon tree, libvirt's test driver with
generated domains, and net-snmp's snmpd. Each panel query is sent as Grafana sends it
(``POST /api/v1/query_range``, form-encoded, ``$__rate_interval`` expanded as Grafana does
for a 60 s ``timeInterval``: 4 minutes), Basic auth with a reader token.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from tests.conftest import wait_for
from tests.snmp.agents import snmpd
from tests.test_libvirt import write_node

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
HWMON = ROOT / "tests" / "fixtures" / "hwmon" / "intel-z790" / "sys" / "class"
#: Grafana's $__rate_interval for a 60 s timeInterval: max(4 x 60 s, step + 60 s).
RATE_INTERVAL = "4m"


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expression) of every panel target."""
    out = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                out.append((path.stem, panel["title"], target["expr"]))
    return out


def test_dashboards_use_the_provisioned_datasource():
    provisioned = yaml.safe_load(
        (ROOT / "grafana/provisioning/datasources/appliance.yaml").read_text())
    uid = provisioned["datasources"][0]["uid"]
    assert {p.stem for p in DASHBOARDS} == {"host", "instances", "snmp", "sensors"}
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        assert board["uid"] and board["panels"]
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == uid, (path.name, panel["title"])
            assert panel["targets"], (path.name, panel["title"])


@pytest.mark.slow
def test_every_panel_query_answers_with_data(appliance_factory, tmp_path):
    with snmpd(tmp_path / "snmpd", "dashboards", []) as snmp_port:
        app = appliance_factory({"pollsters": {
            "host": {"interval": 2},
            "sensors": {"enabled": True, "interval": 2, "lm_sensors": False,
                        "hwmon_root": str(HWMON / "hwmon"),
                        "thermal_root": str(HWMON / "thermal")},
            "libvirt": {"enabled": True, "interval": 2, "uri": write_node(tmp_path, 3)},
            "snmp": {"interval": 2, "targets": [
                {"name": "switch1", "host": "127.0.0.1", "port": snmp_port,
                 "community": "dashboards"}]},
        }})
        reader = subprocess.run(
            [sys.executable, "-m", "appliance", "token", "--data-dir", str(app.data_dir),
             "create", "grafana", "--role", "reader"],
            capture_output=True, text=True, check=True, timeout=60).stdout.split()[-1]
        session = requests.Session()
        session.headers["Authorization"] = "Basic " + base64.b64encode(
            f"{reader}:".encode()).decode()
        queries = panel_queries()
        answered: dict[str, int] = {}

        def all_answered() -> bool:
            now = int(time.time())
            for board, title, expr in queries:
                if answered.get(expr):
                    continue
                r = session.post(f"{app.url}/api/v1/query_range", timeout=30, data={
                    "query": expr.replace("$__rate_interval", RATE_INTERVAL),
                    "start": now - 900, "end": now, "step": 60})
                body = r.json()
                assert r.status_code == 200 and body["status"] == "success", (
                    board, title, expr, body)
                assert "warnings" not in body, (board, title, body["warnings"])
                answered[expr] = len(body["data"]["result"])
            return all(answered.values())

        try:
            wait_for(all_answered, timeout=240, interval=5, what="data in every panel")
        finally:
            empty = [(b, t) for b, t, e in queries if not answered.get(e)]
            assert not empty, f"panels without data: {empty}"
