"""What the overview shows about the appliance itself: processes, sources, disk, alarms.

Every probe here fails soft: a status page that errors because supervisord is restarting,
or because the alarm evaluator has not created its tables yet, would hide the very problem
the operator came to see.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import time
import xmlrpc.client
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.config import Settings
from appliance.index import Index

SUPERVISOR_TIMEOUT = 3.0
#: A source whose last attempt is older than this many intervals is shown as stale.
STALE_INTERVALS = 3
#: supervisord state name -> the page's status colour.
PROCESS_TONE = {
    "RUNNING": "ok",
    "STARTING": "warn",
    "BACKOFF": "bad",
    "STOPPING": "warn",
    "STOPPED": "idle",
    "EXITED": "bad",
    "FATAL": "bad",
    "UNKNOWN": "bad",
}


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over supervisord's UNIX socket, with a timeout (supervisor's own has none)."""

    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str, timeout: float):
        super().__init__()
        self._path, self._timeout = path, timeout

    def make_connection(self, host):  # the "host" is always the socket
        return _UnixConnection(self._path, self._timeout)


@dataclass(slots=True)
class Processes:
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def processes(settings: Settings, timeout: float = SUPERVISOR_TIMEOUT) -> Processes:
    """Every supervised process and its state, from supervisord's XML-RPC interface."""
    path = settings.supervisor_socket
    if not path.exists():
        return Processes(error="supervisord is not running (no control socket): "
                               "started with `appliance api` rather than `appliance run`?")
    proxy = xmlrpc.client.ServerProxy("http://localhost", _UnixTransport(str(path), timeout))
    try:
        infos = proxy.supervisor.getAllProcessInfo()
    except (OSError, xmlrpc.client.Error) as exc:
        return Processes(error=f"supervisord did not answer: {exc}")
    rows = []
    for p in infos:
        rows.append({
            "name": p["name"],
            "state": p["statename"],
            "tone": PROCESS_TONE.get(p["statename"], "bad"),
            "pid": p["pid"] or None,
            "since": p["start"] if p["statename"] == "RUNNING" else p["stop"] or None,
            "detail": p["spawnerr"] or p["description"],
        })
        if p["pid"]:
            rows += forked_rows(p["name"], p["pid"])
    return Processes(rows)


def forked_rows(program: str, pid: int) -> list[dict[str, Any]]:
    """The named processes a supervised one forked itself (appliance/workers.py: one per
    source and the alarm evaluator): supervisord knows only their parent."""
    import psutil

    from appliance.workers import name_of

    rows = []
    try:
        children = psutil.Process(pid).children()
    except psutil.Error:
        return rows
    for child in children:
        try:
            name, since = name_of(" ".join(child.cmdline()).strip()), child.create_time()
        except psutil.Error:  # ended meanwhile
            continue
        if name:
            rows.append({"name": name, "state": "RUNNING", "tone": "ok",
                         "pid": child.pid, "since": since,
                         "detail": f"pid {child.pid}, forked by {program}"})
    return sorted(rows, key=lambda r: r["name"])


def uptime(settings: Settings, fallback_start: float) -> float:
    """Seconds since supervisord started (its pid file), else since this process did."""
    try:
        started = (settings.run_dir / "supervisord.pid").stat().st_mtime
    except OSError:
        started = fallback_start
    return max(0.0, time.time() - started)


def source_rows(settings: Settings, index: Index, now: float | None = None) -> list[dict]:
    """Per source and target: last success, duration, last error, and a status tone.

    An enabled source that has not reported yet is listed as waiting, so a fresh appliance
    shows what it is about to do rather than an empty table.
    """
    now = time.time() if now is None else now
    rows = []
    seen = set()
    for r in index.source_status():
        seen.add(r["source"])
        interval = _interval(settings, r["source"], r["target"])
        if r["last_error"]:
            tone, state = "bad", "error"
        elif interval and now - r["last_attempt"] > STALE_INTERVALS * interval:
            tone, state = "warn", "stale"
        else:
            tone, state = "ok", "ok"
        rows.append({**r, "tone": tone, "state": state, "interval": interval})
    for source in settings.enabled_sources():
        if source not in seen:
            rows.append({
                "source": source, "target": "–", "tone": "idle", "state": "waiting",
                "last_attempt": None, "last_success": None, "duration": None,
                "samples": None, "last_error": None, "polls": 0, "errors": 0, "detail": {},
                "interval": _interval(settings, source, None),
            })
    return rows


def _interval(settings: Settings, source: str, target: str | None) -> float | None:
    section = getattr(settings.pollsters, source, None)
    if section is None:
        return None
    for t in getattr(section, "targets", []):
        if t.name == target and t.interval:
            return t.interval
    return section.interval


@dataclass(slots=True)
class Disk:
    used_by_store: int
    free: int
    total: int


class DiskUsage:
    """The data dir's size on disk, re-measured at most every ``ttl`` seconds per process.

    Walking tens of thousands of RRD files on every page view would cost more than it tells.
    """

    def __init__(self, ttl: float = 30.0):
        self.ttl = ttl
        self._at = -1e9
        self._size = 0

    def measure(self, data_dir: Path) -> Disk:
        if time.monotonic() - self._at > self.ttl:
            self._size = _tree_size(data_dir)
            self._at = time.monotonic()
        usage = shutil.disk_usage(data_dir)
        return Disk(self._size, usage.free, usage.total)


def _tree_size(root: Path) -> int:
    total = 0
    stack = [str(root)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
            except OSError:
                continue  # removed while we walked
    return total


def resource_types(index: Index) -> list[tuple[str, int]]:
    """``(type, count)`` of the resources present, most numerous first."""
    return index.resource_repo.count_by_type()
