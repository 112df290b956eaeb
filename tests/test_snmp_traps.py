"""The trap receiver as its own process (`appliance snmp traps`), fed by net-snmp's
`snmptrap`: v2c and v3 traps from known targets become events on the right resource, the
status page lists them, an `event` alarm fires and clears on them with its webhooks, and
traps from unknown senders, with a wrong community or of undeclared kinds are dropped and
counted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from appliance.config import SnmpTarget, parse
from appliance.index import events, snmp_targets
from appliance.index.snmp_targets import to_definition
from appliance.model import Resource, resource_id_for
from appliance.supervise import forked
from tests.conftest import wait_for
from tests.snmp.agents import free_udp_port
from tests.test_alarms import Api, Receiver
from tests.test_ui import make_app

COMMUNITY = "trap-s3cret"
EDGE_COMMUNITY = "edge-trap-s3cret"
ENGINE_ID = "0x80001f8880aabbccddeeff0011"
V3 = ["-v3", "-e", ENGINE_ID, "-u", "trapper", "-l", "authPriv", "-a", "SHA",
      "-A", "auth-pass-1", "-x", "AES", "-X", "priv-pass-1"]
LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
COLD_START = "1.3.6.1.6.3.1.1.5.1"
UPS_ON_BATTERY = "1.3.6.1.2.1.33.2.1"  # UPS-MIB::upsTrapOnBattery, declared by the site
IF_TABLE = "1.3.6.1.2.1.2.2.1"


class TrapDaemon:
    def __init__(self, config: Path, port: int, data_dir: Path):
        self.port = port
        self.data_dir = data_dir
        self.log = config.with_suffix(".log")
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "appliance", "snmp", "traps", "--config", str(config)],
                stdout=out, stderr=subprocess.STDOUT,
            )
        wait_for(lambda: "listening on" in self.log.read_text() or self.proc.poll() is not None,
                 what="the trap receiver to listen")
        assert self.proc.poll() is None, self.log.read_text()

    def send(self, *args: str, source: str = "127.0.0.1") -> None:
        """One trap with net-snmp's snmptrap, sent from ``source`` (a loopback address)."""
        subprocess.run(
            ["snmptrap", f"--clientaddr={source}", *args], check=True,
            env={**os.environ, "MIBS": ""}, capture_output=True,
        )

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def daemon(tmp_path: Path, settings, store) -> Iterator[TrapDaemon]:
    # A runtime target (as discovery or the API adds them) on another agent port.
    runtime = SnmpTarget(name="edge", host="127.0.0.1", port=1161, community=EDGE_COMMUNITY)
    snmp_targets.put(store.index, "edge", to_definition(runtime), "api", {}, time.time())
    defs = tmp_path / "snmp.d"
    defs.mkdir()
    (defs / "ups.yaml").write_text("group: ups-traps\ntraps: [UPS-MIB::upsTrapOnBattery]\n")
    port = free_udp_port()
    config = tmp_path / "appliance.yaml"
    config.write_text(yaml.safe_dump({
        "data_dir": str(settings.data_dir),
        "pollsters": {"snmp": {
            "definitions_dir": str(defs),
            "traps": {"listen": f"127.0.0.1:{port}"},
            "targets": [
                {"name": "sw1", "host": "127.0.0.1", "community": COMMUNITY},
                {"name": "ups", "host": "127.0.0.1", "version": "3", "user": "trapper",
                 "auth_protocol": "SHA", "auth_key": "auth-pass-1", "priv_protocol": "AES",
                 "priv_key": "priv-pass-1", "engine_id": ENGINE_ID},
            ],
        }},
    }))
    d = TrapDaemon(config, port, settings.data_dir)
    yield d
    d.stop()


def _v2c(d: TrapDaemon, trap: str, *varbinds: str, community: str = COMMUNITY,
         source: str = "127.0.0.1") -> None:
    d.send("-v2c", "-c", community, f"127.0.0.1:{d.port}", "", trap, *varbinds, source=source)


def test_traps_become_events_status_page_and_event_alarms(store, daemon, receiver) -> None:
    api = Api(store.settings, store)
    # The interface as a poll would have indexed it.
    store.index.ensure_resources([Resource.from_key("snmp_interface", "snmp://sw1/if/3")])
    interface = resource_id_for("snmp://sw1/if/3")
    alarm = api.alarm({
        "name": "port-3-down", "type": "event",
        "event_rule": {"event_type": "snmp.trap.linkDown", "resource_id": interface,
                       "window": 600},
        "alarm_actions": [f"{receiver.url}/alarm"], "ok_actions": [f"{receiver.url}/ok"],
    })
    evaluator_now = time.time()
    from appliance.alarms.actions import Notifier
    from appliance.alarms.evaluator import Evaluator

    notifier = Notifier(timeout=30, retries=1, backoff=0.1)
    evaluator = Evaluator(store, notifier)
    try:
        evaluator.run_round(evaluator_now)
        assert receiver.wait_count(1)[0][0] == "/ok"  # no such event yet

        # Dropped: an unknown sender (right community), a wrong community, an undeclared trap.
        _v2c(daemon, LINK_DOWN, f"{IF_TABLE}.1.3", "i", "3", source="127.0.0.2")
        _v2c(daemon, LINK_DOWN, f"{IF_TABLE}.1.3", "i", "3", community="wrong")
        _v2c(daemon, "1.3.6.1.4.1.99.0.1")
        # Accepted: linkDown on ifIndex 3, a v3 coldStart, the site's declared UPS trap.
        _v2c(daemon, LINK_DOWN, f"{IF_TABLE}.1.3", "i", "3", f"{IF_TABLE}.7.3", "i", "1",
             f"{IF_TABLE}.8.3", "i", "2")
        daemon.send(*V3, f"127.0.0.1:{daemon.port}", "", COLD_START)
        _v2c(daemon, UPS_ON_BATTERY)
        _v2c(daemon, "1.3.6.1.6.3.1.1.5.2", community=EDGE_COMMUNITY)  # warmStart
        wait_for(lambda: len(events.recent(store.index)) >= 4, what="four events")
        time.sleep(0.5)  # anything wrongly accepted would be in by now
        got = {e.event_type: e for e in events.recent(store.index)}
        assert sorted(got) == ["snmp.trap.coldStart", "snmp.trap.linkDown",
                               "snmp.trap.upsTrapOnBattery", "snmp.trap.warmStart"]
        assert got["snmp.trap.warmStart"].resource_id == resource_id_for("snmp://edge")
        down = got["snmp.trap.linkDown"]
        assert down.resource_id == interface
        assert down.traits["IF-MIB::ifOperStatus.3"] == 2
        assert down.traits["trap"] == "IF-MIB::linkDown" and down.traits["target"] == "sw1"
        assert got["snmp.trap.coldStart"].resource_id == resource_id_for("snmp://ups")
        assert got["snmp.trap.upsTrapOnBattery"].resource_id == resource_id_for("snmp://sw1")

        status = {r["target"]: r for r in store.index.source_status()
                  if r["source"] == "snmp-traps"}["receiver"]
        counters = status["detail"]
        assert counters["unknown_senders"] == 1 and counters["undeclared"] == 1
        assert counters["events"] == 4
        assert counters["received"] == 6  # the wrong community never got past pysnmp...
        assert counters["rejected_credentials"] == 1  # ...which counted it

        page = make_app(store, open_read=True).test_client().get("/")
        assert "snmp.trap.linkDown" in page.get_data(as_text=True)
        page = make_app(store, open_read=True).test_client().get(f"/resources/{interface}")
        assert "IF-MIB::ifOperStatus.3=2" in page.get_data(as_text=True)

        evaluator.run_round(time.time())
        path, body = receiver.wait_count(2)[1]
        assert path == "/alarm" and body["alarm_id"] == alarm["alarm_id"]
        assert "1 snmp.trap.linkDown event(s)" in body["reason"]
        assert body["reason_data"]["event"]["traits"]["IF-MIB::ifIndex.3"] == 3
        evaluator.run_round(time.time() + 601)  # the event left the window
        assert receiver.wait_count(3)[2][0] == "/ok"
    finally:
        notifier.close()


def test_the_receiver_is_forked_when_there_are_targets(tmp_path: Path) -> None:
    target = {"name": "sw1", "host": "127.0.0.1"}
    with_targets = parse({"data_dir": str(tmp_path), "pollsters": {"snmp": {"targets": [target]}}})
    names = forked(with_targets)
    assert "snmp-traps" in names
    assert "snmp-traps" not in forked(parse({"data_dir": str(tmp_path)}))
    off = parse({"data_dir": str(tmp_path),
                 "pollsters": {"snmp": {"targets": [target], "traps": {"enabled": False}}}})
    assert "snmp-traps" not in forked(off)
    # Unprivileged, the default port is a high one (162 needs root).
    expected = 162 if os.geteuid() == 0 else 10162
    assert with_targets.pollsters.snmp.traps.address() == ("0.0.0.0", expected)


def test_events_match_by_glob_and_old_ones_are_pruned(store) -> None:
    now = time.time()
    events.record(store.index, [
        events.Event(now - 40 * 86400, "snmp.trap.linkDown", "r1", "snmp-traps"),
        events.Event(now - 10, "snmp.trap.linkUp", "r1", "snmp-traps", {"x": 1}),
        events.Event(now - 5, "snmp.trap.linkDown", "r2", "snmp-traps"),
    ])
    assert events.count(store.index, "snmp.trap.link*", now - 60)[0] == 2
    count, latest = events.count(store.index, "snmp.trap.linkUp", now - 60, "r1")
    assert count == 1 and latest is not None and latest.traits == {"x": 1}
    assert events.count(store.index, "snmp.trap.linkDown", now - 60, "r1") == (0, None)
    assert events.prune(store.index, now - 30 * 86400) == 1
    assert [e.event_type for e in events.recent(store.index)] == [
        "snmp.trap.linkDown", "snmp.trap.linkUp"]
