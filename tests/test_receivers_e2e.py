"""Real senders into a running appliance: a Prometheus server and an InfluxDB client.

Prometheus (Debian's package) scrapes the appliance's own ``/metrics`` and remote-writes what
it scraped into ``/v1/prometheus/write``; the InfluxDB 1.x Python client writes line protocol
to ``/v1/influxdb/write``. Both arrive as metrics on resources, readable through the v1 API.
"""

from __future__ import annotations

import time

import pytest
import requests
from influxdb import InfluxDBClient

from tests import engines
from tests.conftest import wait_for

pytestmark = pytest.mark.slow


def _pushed(app, type_: str) -> list[dict]:
    r = requests.get(f"{app.url}/v1/resource/generic", params={"details": "true"},
                     headers=app.headers, timeout=10)
    r.raise_for_status()
    return [res for res in r.json() if res["type"] == type_]


def _values(app, metric_id: str, granularity: int = 60) -> list[float]:
    r = requests.get(f"{app.url}/v1/metric/{metric_id}/measures",
                     params={"aggregation": "max", "granularity": granularity},
                     headers=app.headers, timeout=10)
    r.raise_for_status()
    return [m[2] for m in r.json()]


def test_prometheus_remote_writes_what_it_scrapes_into_the_appliance(appliance_factory, tmp_path):
    # 1-s archives: what Prometheus pushed a moment ago is already a whole point.
    app = appliance_factory({"archive_policy_rules": [{"pattern": "*", "policy": "high"}]})
    host = app.url.removeprefix("http://")
    prom, _ = engines.prometheus(tmp_path / "prometheus", {
        "global": {"scrape_interval": "2s"},
        "scrape_configs": [{
            "job_name": "appliance",
            "authorization": {"credentials": app.token},
            "static_configs": [{"targets": [host]}],
        }],
        "remote_write": [{
            "url": f"{app.url}/v1/prometheus/write",
            "authorization": {"credentials": app.token},
            "queue_config": {"batch_send_deadline": "1s", "min_backoff": "100ms"},
        }],
    })
    try:
        def pushed_up():
            found = [r for r in _pushed(app, "prometheus")
                     if r["original_resource_id"] == f"prometheus://appliance/{host}"]
            return found and "up" in found[0]["metrics"] and found[0]
        resource = wait_for(pushed_up, timeout=60, interval=1, what="Prometheus's remote write")
        assert set(wait_for(lambda: _values(app, resource["metrics"]["up"], 1), timeout=10,
                            what="a whole second of up")) == {1.0}
        # The appliance's own health, as scraped, came back as metrics too.
        assert "appliance_resources" in resource["metrics"]
        assert "Failed to send batch" not in prom.log_path.read_text()
    finally:
        prom.stop()


def test_an_influxdb_client_writes_line_protocol(appliance_factory):
    app = appliance_factory()
    client = InfluxDBClient("127.0.0.1", app.port, username=app.token, password="",
                            database="telegraf", path="v1/influxdb", timeout=10)
    now = int(time.time()) // 60 * 60 - 60
    assert client.write_points([
        {"measurement": "temperature", "tags": {"host": "rack1", "probe": "inlet"},
         "time": now, "fields": {"celsius": 21.5, "ok": True}},
    ], time_precision="s")
    [resource] = _pushed(app, "influxdb")
    assert resource["original_resource_id"] == "influxdb://rack1"
    assert _values(app, resource["metrics"]["temperature.celsius@probe=inlet"]) == [21.5]
    assert _values(app, resource["metrics"]["temperature.ok@probe=inlet"]) == [1.0]
