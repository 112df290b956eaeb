"""What keeps the appliance small and gives memory back (issue 14), on the real thing.

- The API's workers are forked from a preloaded arbiter, and a worker that holds more than
  ``api.worker_recycle_mb`` of memory of its own is replaced after its request.
- The API's arbiter, the agents and the alarm evaluator are forked from one preloaded
  parent; a crash in one ends and restarts that one only, and the status page still lists
  each of them.
"""

from __future__ import annotations

import os
import signal
import time

import psutil
import requests

from appliance import workers
from appliance.config import ApiSettings
from appliance.web.ui.health import forked_rows
from tests.conftest import wait_for


def _gunicorn_workers(app) -> set[int]:
    """Pids of the API's worker processes (children of the gunicorn arbiter, which the
    ``workers`` parent forked)."""
    master = wait_for(lambda: _forked(app).get("api"), timeout=60, what="the API's arbiter")
    return {p.pid for p in psutil.Process(master).children()}


def _workers_parent(app) -> psutil.Process | None:
    """The ``workers`` process, once it has imported and titled itself."""
    root = psutil.Process(app.proc.pid)
    return next((p for p in root.children()
                 if workers.name_of(" ".join(p.cmdline()).strip()) == "workers"), None)


def _forked(app) -> dict[str, int]:
    """Worker name -> pid, as the status page finds them."""
    parent = _workers_parent(app)
    if parent is None:
        return {}
    return {row["name"]: row["pid"] for row in forked_rows("workers", parent.pid)}


def _serves(app) -> bool:
    try:
        return requests.get(f"{app.url}/v1/status", headers=app.headers, timeout=5).ok
    except requests.ConnectionError:
        return False


def _day_of_measures(app) -> tuple[str, int]:
    """A metric with a day of points at one minute; returns its id and the day's start."""
    h = app.headers
    mid = requests.post(f"{app.url}/v1/metric", json={"archive_policy_name": "medium"},
                        headers=h, timeout=10).json()["id"]
    start = (int(time.time()) // 60 - 1440) * 60
    points = [{"timestamp": start + 60 * i, "value": float(i)} for i in range(1440)]
    r = requests.post(f"{app.url}/v1/metric/{mid}/measures", json=points, headers=h, timeout=30)
    assert r.status_code == 202
    return mid, start


def _read_windows(app, mid: str, start: int, count: int) -> None:
    """GETs of ``count`` different windows: each leaves a timestamp grid in the worker's
    bounded caches (appliance/web/api/jsonio.py), about 200 KB apiece."""
    for i in range(count):
        r = requests.get(f"{app.url}/v1/metric/{mid}/measures", headers=app.headers,
                         params={"granularity": 60, "start": start + 60 * i}, timeout=10)
        assert r.status_code == 200 and len(r.json()) == 1440 - i


def test_api_worker_that_grew_past_the_bound_is_replaced(appliance_factory):
    app = appliance_factory({"api": {"workers": 1, "worker_recycle_mb": 1}})
    mid, start = _day_of_measures(app)
    # The worker may be being replaced already (its first requests copy pages): between the
    # old one's exit and the fork of the next, the arbiter has none.
    before = wait_for(lambda: _gunicorn_workers(app), timeout=60, what="an API worker")
    assert len(before) == 1
    _read_windows(app, mid, start, 10)  # a forked worker's first requests copy ~10 MB
    after = wait_for(lambda: (_gunicorn_workers(app) - before) or None, timeout=60,
                     what="a fresh API worker")
    assert before.isdisjoint(after)
    _read_windows(app, mid, start, 1)  # the fresh worker, forked from the master, serves


def test_api_worker_within_the_bound_is_kept(appliance_factory):
    assert ApiSettings().worker_recycle_mb == 24
    app = appliance_factory({"api": {"workers": 1}})
    mid, start = _day_of_measures(app)
    before = _gunicorn_workers(app)
    _read_windows(app, mid, start, 10)  # ~2 MB of cached grids, well within the 24 MB
    assert _gunicorn_workers(app) == before


def test_crash_in_one_source_restarts_that_source_only(appliance_factory):
    app = appliance_factory({"alarms": {"evaluation_interval": 1}})
    conf = (app.data_dir / "run" / "supervisord.conf").read_text()
    assert "[program:workers]" in conf and "[program:poll-host]" not in conf
    assert "[program:api]" not in conf
    named = wait_for(lambda: (lambda f: f if {"api", "poll-host", "alarm-evaluator"} <= set(f)
                              else None)(_forked(app)), timeout=60,
                     what="the forked API, agent and evaluator")
    parent = _workers_parent(app)

    os.kill(named["poll-host"], signal.SIGSEGV)  # what a crash in a C binding looks like
    again = wait_for(lambda: (lambda f: f if f.get("poll-host", named["poll-host"])
                              != named["poll-host"] else None)(_forked(app)),
                     timeout=60, what="poll-host forked again")
    assert again["alarm-evaluator"] == named["alarm-evaluator"]
    assert again["api"] == named["api"]
    assert _workers_parent(app) == parent

    # The API's arbiter killed outright: forked again alone, and serving again.
    os.kill(named["api"], signal.SIGKILL)
    again = wait_for(lambda: (lambda f: f if f.get("api", named["api"]) != named["api"]
                              else None)(_forked(app)), timeout=60, what="the API forked again")
    assert again["alarm-evaluator"] == named["alarm-evaluator"]
    wait_for(lambda: _serves(app), timeout=60, what="the API serving again")
    # The restarted agent polls again: the host source reports after the crash.
    crashed_at = psutil.Process(again["poll-host"]).create_time()

    def polled_since() -> bool:
        status = requests.get(f"{app.url}/v1/status", headers=app.headers, timeout=5).json()
        host = [s for s in status["appliance"]["sources"] if s["source"] == "host"]
        return bool(host) and host[0]["last_success"] > crashed_at

    wait_for(polled_since, timeout=60, what="a host poll by the restarted agent")
    app.stop()
    assert app.leftovers() == []


def test_restart_back_off_grows_for_quick_deaths_and_resets_after_a_stable_run():
    w = workers.Worker("poll-x", lambda: None)
    delays = [workers.restart_delay(w, lived=0.5) for _ in range(8)]
    assert delays[0] == workers.FIRST_BACKOFF
    assert delays == sorted(delays) and delays[-1] == workers.MAX_BACKOFF
    assert workers.restart_delay(w, lived=workers.STABLE_SECONDS) == 0.0


def test_a_broken_snmp_definition_stops_only_the_snmp_processes(appliance_factory, tmp_path):
    # The parent reads the SNMP definitions once for its children; a site's broken file
    # must cost the SNMP agent alone, not the parent and with it the API.
    site = tmp_path / "definitions"
    site.mkdir()
    (site / "broken.yaml").write_text("name: broken\nscalars: [not, a, mapping\n")
    app = appliance_factory({"pollsters": {"snmp": {
        "definitions_dir": str(site),
        "targets": [{"name": "sw1", "host": "127.0.0.1", "port": 9, "community": "x"}],
        "traps": {"enabled": False}}}})
    named = wait_for(lambda: (lambda f: f if {"api", "poll-host"} <= set(f) else None)(
        _forked(app)), timeout=60, what="the API and the host agent")
    assert _serves(app)
    # The SNMP agent meets the error itself and ends, and is forked again after a back-off.
    wait_for(lambda: any("worker poll-snmp (pid" in line and "ended with status 1" in line
                         for line in app.log_path.read_text(errors="replace").splitlines()),
             timeout=60, what="the SNMP agent ending on its own")
    again = _forked(app)
    assert again["api"] == named["api"] and again["poll-host"] == named["poll-host"]
    assert _serves(app)
