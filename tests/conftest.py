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
