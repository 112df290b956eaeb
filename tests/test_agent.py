"""The agent's scheduling rules, with a real pollster and real sinks."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from appliance.agent import Agent
from appliance.model import PollResult, TargetReport
from appliance.pollsters.base import Pollster


class Sleepy(Pollster):
    """A source that hangs on its first read (as a stuck libvirt call would)."""

    source = "sleepy"

    def __init__(self, hang: float):
        self.hang = hang
        self.calls = 0
        self.release = threading.Event()

    def poll(self, targets: Sequence[str], deadline: float) -> PollResult:
        self.calls += 1
        if self.calls == 1:
            self.release.wait(self.hang)
        return PollResult(reports=[TargetReport(self.source, "t", time.time(), 0.0)])


def test_overrunning_poll_is_reported_and_not_stacked():
    pollster = Sleepy(hang=30)
    agent = Agent(pollster, [], interval=1.0)
    first = agent.poll_once()
    assert first.reports[0].error and "exceeded" in first.reports[0].error
    second = agent.poll_once()  # the first is still stuck: no second thread is started
    assert "still running" in second.reports[0].error
    assert pollster.calls == 1
    pollster.release.set()
    time.sleep(0.1)
    third = agent.poll_once()
    assert third.reports[0].ok and pollster.calls == 2


def test_write_failure_keeps_results_for_retry():
    delivered = []
    fail = [True]

    def sink(result):
        if fail[0]:
            raise ConnectionRefusedError("rrdcached restarting")
        delivered.append(result)

    agent = Agent(Sleepy(0), [sink], interval=1.0)
    r1, r2 = PollResult(), PollResult()
    agent.deliver(r1)
    assert delivered == []
    fail[0] = False
    agent.deliver(r2)
    assert delivered == [r1, r2]


def test_poll_once_cli_prints_json_without_writing(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "appliance", "poll", "--once", "--source", "host", "--json",
         "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    names = {s["metric"] for s in data["samples"]}
    assert {"hardware.cpu.load.1min", "hardware.memory.used", "hardware.cpu.util"} <= names
    types = {s["resource_type"] for s in data["samples"]}
    assert {"host", "host_network_interface", "host_filesystem"} <= types
    assert data["reports"][0]["error"] is None
    assert not (tmp_path / "d").exists()  # --once writes nothing


def test_poll_once_cli_table(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "appliance", "poll", "--once", "--source", "host",
         "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["TYPE", "RESOURCE", "METRIC", "VALUE", "UNIT"]
    assert lines[-1].startswith("# host/") and "ok" in lines[-1]
