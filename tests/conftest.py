"""Shared fixtures: a data dir, a real rrdcached on it, a store over both."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance import config
from appliance.config import Settings
from appliance.storage.daemon import prepare, rrdcached_argv
from appliance.store import Store

pytest_plugins = ["tests.noskip", "pytester"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return config.parse({"data_dir": str(tmp_path / "data")}, "<test>")


class Rrdcached:
    """A real rrdcached on a settings' data dir, restartable (crash tests kill it)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        prepare(self.settings)
        log = open(self.settings.data_dir / "rrdcached.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(rrdcached_argv(self.settings), stdout=log, stderr=log)
        wait_for(lambda: os.path.exists(self.settings.rrdcached_socket), what="rrdcached socket")

    def kill(self, sig: int = 9) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)

    def stop(self) -> None:
        self.kill(15)


@pytest.fixture
def rrdcached(settings: Settings) -> Iterator[Rrdcached]:
    daemon = Rrdcached(settings)
    daemon.start()
    yield daemon
    daemon.stop()


@pytest.fixture
def store(settings: Settings, rrdcached: Rrdcached) -> Iterator[Store]:
    s = Store(settings)
    yield s
    s.close()


class RunningAppliance:
    """``appliance run`` for real (supervisord, rrdcached, gunicorn, agents) on a tmp dir."""

    def __init__(
        self, tmp: Path, overrides: dict | None = None, socket_stdout: bool = False,
        python: str | None = None,
    ):
        import sys

        import yaml

        # Another version's interpreter (the upgrade test runs a release from history).
        self.python = python or sys.executable
        # systemd's StandardOutput=journal hands the service a stream socket as stdout.
        self.socket_stdout = socket_stdout
        tmp.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.data_dir = tmp / "data"
        self.config_path = tmp / "appliance.yaml"
        cfg = {
            "api": {"listen": f"127.0.0.1:{self.port}", "workers": 2},
            "pollsters": {
                "host": {"interval": 2},
                "sensors": {"enabled": False},
                "libvirt": {"enabled": False},
            },
        }
        for key, value in (overrides or {}).items():
            if isinstance(value, dict) and isinstance(cfg.get(key), dict):
                cfg[key] = {**cfg[key], **value}
            else:
                cfg[key] = value
        self.config_path.write_text(yaml.safe_dump(cfg))
        tls = cfg["api"].get("tls")
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        # What a client trusts: the generated certificate (api.tls: auto) or the given one.
        self.verify: str | bool = True
        if tls:
            self.verify = str(self.data_dir / "tls/cert.pem" if tls == "auto"
                              else tls["cert_file"])
        self.log_path = tmp / "appliance.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115
        out = log
        if self.socket_stdout:
            import threading

            out, reader = socket.socketpair()

            def drain() -> None:
                while chunk := reader.recv(65536):
                    log.write(chunk)
                    log.flush()

            threading.Thread(target=drain, daemon=True).start()
        self.proc = subprocess.Popen(
            [self.python, "-m", "appliance", "run", "--config", str(self.config_path),
             "--data-dir", str(self.data_dir)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            # Not the repo: ``python -m`` puts the working directory first on sys.path, and
            # another version's interpreter must import its own code.
            cwd=self.data_dir.parent,
        )
        if self.socket_stdout:
            out.close()
        token_file = self.data_dir / "admin-token"
        wait_for(token_file.exists, what="the generated admin token")
        self.token = token_file.read_text().strip()
        wait_for(self._status_ok, timeout=30, what=f"{self.url}/v1/status, store up")

    def _status_ok(self) -> bool:
        """The API answers and its store is up: supervisord starts rrdcached and the API
        side by side, and until rrdcached listens a write is answered 503 (by design), which
        a test writing at once would meet when the machine is busy. A release from before
        the status showed the store has no such field."""
        import requests

        try:
            r = requests.get(f"{self.url}/v1/status", headers=self.headers, timeout=5,
                             verify=self.verify)
        except OSError:  # requests' errors, and a certificate not generated yet
            return False
        if not r.ok:
            return False
        store = r.json().get("appliance", {}).get("store", {"rrdcached": "up"})
        return store["rrdcached"] == "up"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def stop(self) -> float:
        """SIGTERM supervisord; return how long everything took to go away."""
        import signal

        assert self.proc is not None
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return time.monotonic() - started

    def leftovers(self) -> list[str]:
        """Processes still running whose command line mentions this data dir."""
        out = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(self.data_dir) in cmd:
                out.append(f"{pid}: {cmd}")
        return out


@pytest.fixture
def appliance_factory(tmp_path: Path):
    """Start appliances with config overrides; every one is stopped at teardown."""
    started: list[RunningAppliance] = []

    def start(
        overrides: dict | None = None, name: str = "a", socket_stdout: bool = False,
        python: str | None = None,
    ) -> RunningAppliance:
        app = RunningAppliance(tmp_path / name, overrides, socket_stdout, python)
        started.append(app)
        app.start()
        return app

    yield start
    for app in started:
        app.stop()
