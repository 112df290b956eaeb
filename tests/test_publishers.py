"""Publishers for real: VictoriaMetrics takes the remote write, a second appliance the
Gnocchi batches, and a receiver that is down never holds polling up.

Appliance ``a`` polls its host every 2 s and publishes to all three; the series VictoriaMetrics
returns must carry the names and labels ``a``'s own ``/metrics`` shows.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests import engines
from tests.conftest import free_port, wait_for

pytestmark = pytest.mark.slow

GAUGE = "hardware_memory_total"  # hardware.memory.total: a level that does not move
COUNTER = "hardware_network_incoming_bytes_total"


def _exposed(app, family: str) -> list:
    r = requests.get(f"{app.url}/metrics", headers=app.headers, timeout=10)
    r.raise_for_status()
    return [s for f in text_string_to_metric_families(r.text) for s in f.samples
            if s.name == family]


def _vm_series(vm_url: str, name: str) -> list[dict]:
    r = requests.get(f"{vm_url}/api/v1/export", params={"match[]": name}, timeout=10)
    r.raise_for_status()
    import json

    return [json.loads(line) for line in r.text.splitlines() if line.strip()]


class _Slow(BaseHTTPRequestHandler):
    """A receiver that takes 30 s to answer anything."""

    def do_POST(self):  # noqa: N802 - the http.server API
        time.sleep(30)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args):
        pass


def test_remote_write_to_victoria_metrics_and_gnocchi_to_another_appliance(
        appliance_factory, tmp_path):
    vm, vm_url = engines.victoria_metrics(tmp_path / "vm")
    slow = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    slow.daemon_threads = True
    threading.Thread(target=slow.serve_forever, daemon=True).start()
    slow_url = f"http://127.0.0.1:{slow.server_address[1]}/api/v1/write"
    try:
        b = appliance_factory({"pollsters": {"host": {"enabled": False}}}, name="b")
        dead = f"http://127.0.0.1:{free_port()}/api/v1/write"  # nobody listens there
        a = appliance_factory({"publishers": [
            {"kind": "prometheus_remote_write", "url": f"{vm_url}/api/v1/write"},
            {"kind": "gnocchi", "url": b.url, "token": b.token},
            {"kind": "prometheus_remote_write", "url": dead, "max_backoff": 2},
            {"kind": "prometheus_remote_write", "url": slow_url, "timeout": 20},
        ]}, name="a")

        # VictoriaMetrics has the series, with the labels /metrics shows and its values.
        series = wait_for(lambda: _vm_series(vm_url, GAUGE), timeout=60, interval=1,
                          what="the remote write in VictoriaMetrics")
        [exposed] = _exposed(a, GAUGE)
        [published] = [s for s in series if s["metric"]["resource_id"]
                       == exposed.labels["resource_id"]]
        want = {k: v for k, v in exposed.labels.items() if v != ""}
        assert published["metric"] == {"__name__": GAUGE, **want}
        assert exposed.value in published["values"]
        counters = wait_for(lambda: _vm_series(vm_url, COUNTER), timeout=30, interval=1,
                            what="a counter in VictoriaMetrics")
        exposed_counters = {s.labels["metric_id"] for s in _exposed(a, COUNTER)}
        assert {s["metric"]["metric_id"] for s in counters} <= exposed_counters

        # The second appliance got the same host resource and its metrics, created on the fly.
        host = requests.get(f"{a.url}/v1/resource/host", headers=a.headers, timeout=10).json()
        [host] = host

        def on_b():
            r = requests.get(f"{b.url}/v1/resource/host/{host['id']}", headers=b.headers,
                             timeout=10)
            return r.ok and set(host["metrics"]) <= set(r.json()["metrics"]) and r.json()
        mirrored = wait_for(on_b, timeout=30, interval=1, what="the Gnocchi batches on b")
        assert mirrored["host_name"] == host["host_name"]

        # The dead and the slow receivers: polling goes on at its pace, backlogs show.
        def dead_row():
            status = requests.get(f"{a.url}/v1/status", headers=a.headers, timeout=10).json()
            rows = {p["publisher"]: p for p in status["appliance"]["publishers"]}
            row = rows.get(f"prometheus_remote_write {dead}")
            return row and row["failures"] >= 2 and row["backlog"] > 0 and (status, row)
        status, row = wait_for(dead_row, timeout=30, interval=1, what="the dead publisher's state")
        assert row["last_success"] is None and "Connection" in row["last_error"]
        live = {p["publisher"]: p for p in status["appliance"]["publishers"]}
        assert live[f"prometheus_remote_write {vm_url}/api/v1/write"]["last_success"]

        def host_polls() -> int:
            status = requests.get(f"{a.url}/v1/status", headers=a.headers, timeout=10).json()
            [source] = [s for s in status["appliance"]["sources"] if s["source"] == "host"]
            assert source["errors"] == 0
            return source["polls"]
        before = host_polls()
        wait_for(lambda: host_polls() >= before + 2, timeout=8, interval=0.5,
                 what="two more 2-s polls while a receiver is down and another hangs")
        slow_row = {p["publisher"]: p for p in requests.get(
            f"{a.url}/v1/status", headers=a.headers, timeout=10).json()["appliance"][
            "publishers"]}[f"prometheus_remote_write {slow_url}"]
        assert slow_row["backlog"] > 0 and slow_row["last_success"] is None
        backlog = [s for s in _exposed(a, "appliance_publisher_backlog")
                   if s.labels["publisher"] == f"prometheus_remote_write {dead}"]
        assert backlog and backlog[0].value > 0
    finally:
        vm.stop()
        slow.shutdown()
