"""The whole appliance under supervisord: host measures served over HTTP, clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import requests

from tests.conftest import wait_for


def _host_measures(app) -> list:
    metrics = requests.get(f"{app.url}/v1/metric", headers=app.headers, timeout=5).json()
    by_name = {m["name"]: m for m in metrics}
    if "hardware.cpu.load.1min" not in by_name:
        return []
    mid = by_name["hardware.cpu.load.1min"]["id"]
    r = requests.get(
        f"{app.url}/v1/metric/{mid}/measures", params={"granularity": 60},
        headers=app.headers, timeout=5,
    )
    return r.json()


def test_run_serves_host_measures_and_stops_cleanly(appliance_factory):
    app = appliance_factory()
    assert requests.get(f"{app.url}/v1/metric", timeout=5).status_code == 401
    bad = {"Authorization": "Bearer not-the-token-at-all"}
    assert requests.get(f"{app.url}/v1/metric", headers=bad, timeout=5).status_code == 401
    measures = wait_for(lambda: _host_measures(app), timeout=30, what="host measures")
    ts, granularity, value = measures[-1]
    assert granularity == 60.0 and value >= 0
    status = requests.get(f"{app.url}/v1/status", headers=app.headers, timeout=5).json()
    host = [s for s in status["appliance"]["sources"] if s["source"] == "host"]
    assert host and host[0]["last_error"] is None and host[0]["samples"] > 10

    # A second run on the same data dir refuses with a clear message.
    second = subprocess.run(
        [sys.executable, "-m", "appliance", "run", "--config", str(app.config_path),
         "--data-dir", str(app.data_dir)],
        capture_output=True, text=True, timeout=30,
    )
    assert second.returncode == 1
    assert "already running" in second.stderr

    took = app.stop()
    assert took < 10
    assert app.leftovers() == []


def test_crashed_child_is_restarted(appliance_factory):
    app = appliance_factory()
    pidfile = app.data_dir / "run" / "rrdcached.pid"
    old = int(pidfile.read_text())
    os.kill(old, signal.SIGKILL)

    def restarted():
        try:
            pid = int(pidfile.read_text())
        except (OSError, ValueError):
            return False
        return pid != old and os.path.exists(f"/proc/{pid}")

    wait_for(restarted, timeout=20, what="rrdcached restarted by supervisord")
    wait_for(lambda: _host_measures(app), timeout=30, what="host measures after the restart")


def test_run_with_a_socket_as_stdout_as_under_systemd(appliance_factory):
    """StandardOutput=journal gives a stream socket; supervisord cannot reopen it as a file."""
    app = appliance_factory(socket_stdout=True)
    conf = (app.data_dir / "run" / "supervisord.conf").read_text()
    assert "stdout_syslog = true" in conf and "/dev/stdout" not in conf
    wait_for(lambda: _host_measures(app), timeout=30, what="host measures")
