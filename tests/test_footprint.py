"""What keeps the appliance small and gives memory back (issue 14), on the real thing.

- The API's workers are forked from a preloaded arbiter, and a worker that holds more than
  ``api.worker_recycle_mb`` of memory of its own is replaced after its request; one that
  grew while serving and then stays idle for ``api.worker_idle_recycle_s`` is replaced
  too, while a busy worker, or one that served nothing, is kept.
- The API's arbiter, the agents and the alarm evaluator are forked from one preloaded
  parent; a crash in one ends and restarts that one only, and the status page still lists
  each of them.
- Those processes, and supervisord's programs, import nothing once forked: every module
  they run was imported before supervisord started, so its pages stay shared instead of
  being copied into each process.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import threading
import time
import types
from pathlib import Path

import psutil
import requests

from appliance import retention, workers
from appliance.config import ApiSettings
from appliance.web.api import serving
from appliance.web.ui.health import forked_rows
from tests.conftest import free_port, wait_for

HWMON = Path(__file__).parent / "fixtures/hwmon/amd-x570/sys/class/hwmon"


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


def test_api_worker_idle_after_a_burst_is_replaced_and_a_busy_one_is_kept(appliance_factory):
    app = appliance_factory({"api": {"workers": 1, "worker_idle_recycle_s": 2}})
    mid, start = _day_of_measures(app)
    _read_windows(app, mid, start, 10)  # the burst: ~10 MB of pages copied and cached grids
    (burst,) = wait_for(lambda: _gunicorn_workers(app), timeout=60, what="an API worker")
    held = psutil.Process(burst).memory_full_info().uss

    # Idle: replaced by a fresh fork, which holds less of its own than the worker it replaced.
    fresh = wait_for(lambda: (_gunicorn_workers(app) - {burst}) or None, timeout=60,
                     what="the idle worker replaced")
    assert len(fresh) == 1
    wait_for(lambda: f"API worker {burst} idle for" in app.log_path.read_text(errors="replace"),
             timeout=10, what="the reason in the log")
    assert psutil.Process(*fresh).memory_full_info().uss < held

    # A fresh worker that serves nothing has not grown: it stays however long it idles.
    time.sleep(3 * serving.IDLE_TRIM)
    assert _gunicorn_workers(app) == fresh

    # A busy worker is never idle for long enough, whatever it holds: it stays while it serves.
    t_end = time.monotonic() + 4 * serving.IDLE_TRIM
    while time.monotonic() < t_end:
        _read_windows(app, mid, start, 1)
        assert _gunicorn_workers(app) == fresh
        time.sleep(0.2)
    # And the memory that serving left comes back once it stops.
    wait_for(lambda: (_gunicorn_workers(app) - fresh) or None, timeout=60,
             what="the worker replaced once idle")
    _read_windows(app, mid, start, 1)


def test_an_idle_worker_is_not_retired_while_a_policy_rebuild_runs_in_it(monkeypatch):
    """The idle thread's own decision, in this process: a worker that served, grew and idles
    is retired only once the rebuild of a policy change it runs has ended (retiring it would
    cut the rebuild short). gunicorn's worker is stood in for by the two things the thread
    touches, ``alive`` and the wake-up pipe; the end-to-end path is the test above."""
    rebuild_done = threading.Event()
    threading.Thread(target=rebuild_done.wait, name=retention.REBUILD_THREAD,
                     daemon=True).start()
    worker = types.SimpleNamespace(alive=True, PIPE=os.pipe())
    monkeypatch.setattr(serving, "_served", True)
    monkeypatch.setattr(serving, "_last_request", time.monotonic() - 60)
    monkeypatch.setattr(serving, "_own_at_start", 0)  # this process has grown far beyond it
    threading.Thread(target=serving._when_idle, args=(worker, 1), daemon=True).start()
    time.sleep(3 * serving.IDLE_TRIM)
    assert worker.alive
    rebuild_done.set()
    wait_for(lambda: not worker.alive, timeout=30, what="the worker retired after the rebuild")
    assert os.read(worker.PIPE[0], 1) == b"1"  # its wait is woken, not left to time out


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


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # its package is not installed either
        return False


def _cycles(log: str, source: str) -> int:
    return len(re.findall(rf"source={source} target=", log))


def test_a_forked_process_imports_nothing_after_the_fork(appliance_factory, monkeypatch):
    """supervisord's programs and every process they fork (every source's agent, the
    evaluator, the API's arbiter and workers), each having done its work (polls written, API
    reads, the status page), imported no module of their own: supervisord forks its
    programs from the interpreter that imported everything, rather than exec'ing them.

    A module imported in a forked process costs that process several times its size: the
    import writes to pages it shares with the parent (the module table, interned names, the
    classes it uses), and each page written is copied; a program exec'd would import it all
    again. Python's own import log (``PYTHONPROFILEIMPORTTIME``, one line per import, on the
    appliance's output) tells: once supervisord spawned its first program, the only lines
    may name modules that do not exist here (an optional accelerator a library tries, such
    as gunicorn's C parser).
    """
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    dead_device = {"name": "dead", "host": "127.0.0.1", "port": free_port(),
                   "community": "public", "timeout": 0.2, "retries": 0}
    app = appliance_factory({
        "pollsters": {
            "host": {"interval": 2},
            "sensors": {"interval": 2, "hwmon_root": str(HWMON), "lm_sensors": False},
            "libvirt": {"enabled": True, "interval": 2, "uri": "test:///default"},
            "snmp": {"interval": 2, "targets": [dead_device]},
        },
        "alarms": {"evaluation_interval": 1},
    })
    wait_for(lambda: all(_cycles(app.log_path.read_text(), s) >= 2
                         for s in ("host", "sensors", "libvirt", "snmp")),
             timeout=60, what="two cycles of every source")

    h, url = app.headers, app.url
    metrics = requests.get(f"{url}/v1/metric", headers=h, timeout=10).json()
    host = [m["id"] for m in metrics if m["name"].startswith("hardware.cpu.")][:2]
    assert len(host) == 2, "the host agent wrote its metrics"
    now = int(time.time())
    refs = " ".join(f"({mid} mean)" for mid in host)
    session = requests.Session()
    for _ in range(3):  # the requests land on either worker
        for path in ("/v1/status", "/v1/metric", f"/v1/metric/{host[0]}/measures", "/metrics",
                     "/v1/resource/generic", "/api/v1/query?query=up",
                     f"/api/v1/query_range?query=up&start={now - 600}&end={now}&step=60"):
            assert requests.get(url + path, headers=h, timeout=10).status_code == 200, path
        r = requests.post(f"{url}/v1/aggregates", headers=h, timeout=10, params={"fill": 0},
                          json={"operations": f"(aggregate mean (metric {refs}))"})
        assert r.status_code == 200, r.text
        form = session.get(f"{url}/login", timeout=10).text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        session.post(f"{url}/login", data={"token": app.token, "csrf_token": csrf}, timeout=10)
        for page in ("/", "/resources", "/alarms"):
            r = session.get(url + page, timeout=10)
            assert r.status_code == 200 and "<html" in r.text.lower(), page

    log = app.log_path.read_text()
    forked_at = log.index("spawned: ")  # supervisord forked its first program
    after = re.findall(r"^import time:\s+\d+ \|\s+\d+ \| *(\S+)$", log[forked_at:], re.M)
    assert after or "import time:" in log[:forked_at], "the import log is on"
    assert sorted({m for m in after if _importable(m)}) == []


def test_supervisord_forks_every_program_of_ours_and_execs_anything_else(tmp_path):
    """The rendered supervisord.conf names our programs by a command line that the
    preloaded supervisord recognizes (and forks), while another command, or ours under
    another interpreter (a release run from elsewhere), is exec'd as supervisord would."""
    import configparser
    import shlex
    import sys

    from appliance import config, supervise
    from appliance.forking_supervisord import appliance_command

    settings = config.load(None, tmp_path)
    conf = configparser.RawConfigParser()
    conf.read_string(supervise.render(settings, None))
    commands = {section.removeprefix("program:"): shlex.split(conf[section]["command"])
                for section in conf.sections() if section.startswith("program:")}
    assert set(commands) == {"rrdcached", "workers"}
    for name, argv in commands.items():
        assert appliance_command(argv) == [name, "--data-dir", str(tmp_path)]

    other = "/opt/elsewhere/bin/python"
    assert appliance_command([other, *commands["workers"][1:]]) is None
    assert appliance_command(["/usr/bin/rrdcached", "-g"]) is None
    assert appliance_command([sys.executable, "-m", "appliance", "workers"]) is None
