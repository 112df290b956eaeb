"""``/metrics``: latest values and health in Prometheus' text format, checked by promtool."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from appliance import config, tokens
from appliance.model import Kind, PollResult, Resource, Sample, TargetReport
from appliance.web.api import create_app

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "promtool"


@pytest.fixture(scope="session")
def promtool() -> str:
    """Debian's promtool, extracted from the prometheus package (the server is not installed)."""
    found = shutil.which("promtool")
    if found:
        return found
    binary = CACHE / "root" / "usr" / "bin" / "promtool"
    if not binary.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            subprocess.run(["apt-get", "download", "prometheus"], cwd=tmp, check=True,
                           capture_output=True, timeout=300)
            deb = next(Path(tmp).glob("prometheus_*.deb"))
            subprocess.run(["dpkg-deb", "-x", str(deb), str(CACHE / "root")], check=True)
    return str(binary)


@pytest.fixture
def client(store):
    token = tokens.create(store.index, "admin", "admin")
    app = create_app(store.settings, store)
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return c


def _poll(now: float) -> PollResult:
    port = Resource.from_key("snmp_interface", "snmp://sw1/3",
                             {"name": "ge-0/0/3", "device_id": "sw1", "if.alias": "uplink"})
    sensor = Resource.from_key("sensor", "hwmon://coretemp/temp1",
                               {"chip": "coretemp", "label": "Package id 0"})
    samples = [
        Sample(port, "hardware.network.incoming.bytes", "B", Kind.CUMULATIVE, 1000, now - 60),
        Sample(port, "hardware.network.incoming.bytes", "B", Kind.CUMULATIVE, 61000, now),
        Sample(sensor, "hardware.sensor.temperature", "C", Kind.GAUGE, 47.5, now),
    ]
    reports = [TargetReport("snmp", "sw1", now, 0.25, samples=2),
               TargetReport("snmp", "sw2", now, 5.0, error="timeout")]
    return PollResult(samples, [], reports)


def test_exposition_has_latest_values_labels_and_health(client, store, promtool):
    store.write(_poll(time.time() // 60 * 60))
    store.index.record_reports(_poll(time.time()).reports)
    store.index.create_metric("pushed.but.empty", "W", None, "low")  # no RRD file yet
    r = client.get("/metrics")
    assert r.status_code == 200
    text = r.get_data(as_text=True)

    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr

    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append(s)
    assert "pushed_but_empty" not in samples
    (temp,) = samples["hardware_sensor_temperature"]
    assert temp.value == 47.5
    assert temp.labels["chip"] == "coretemp" and temp.labels["resource_type"] == "sensor"
    (octets,) = samples["hardware_network_incoming_bytes_total"]
    assert octets.value == 61000 and octets.labels["if_alias"] == "uplink"
    up = {s.labels["target"]: s.value for s in samples["appliance_poll_up"]}
    assert up == {"sw1": 1.0, "sw2": 0.0}
    errors = {s.labels["target"]: s.value for s in samples["appliance_poll_errors_total"]}
    assert errors == {"sw1": 0.0, "sw2": 1.0}
    assert samples["appliance_measures_accepted_total"][0].value == 3
    assert samples["appliance_rrdcached_up"][0].value == 1.0
    assert "appliance_rrdcached_queue_length" in samples


def test_exposition_needs_a_token_unless_open_read(client):
    assert client.get("/metrics", environ_base={"HTTP_AUTHORIZATION": ""}).status_code == 401


def test_exposition_open_to_anonymous_readers_when_configured(store):
    settings = config.parse({"data_dir": str(store.settings.data_dir),
                             "api": {"open_read": True}}, "<test>")
    client = create_app(settings, store).test_client()
    r = client.get("/metrics")
    assert r.status_code == 200 and b"appliance_rrdcached_up" in r.data
    assert client.post("/v1/metric", json={"archive_policy_name": "low"}).status_code == 401
