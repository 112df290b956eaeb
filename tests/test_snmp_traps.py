"""The trap receiver as its own process (`appliance snmp traps`), fed by net-snmp's
`snmptrap`: v2c and v3 traps from known targets become events on the right resource, the
status page lists them, an `event` alarm fires and clears on them with its webhooks, and
traps from unknown senders, with a wrong community or of undeclared kinds are dropped and
counted. Both receivers: the v2c one (no pysnmp) when no target is v3, pysnmp's when one
is; and the switch from one to the other, under the real `workers` parent, when a v3
target is added at run time. In the appliance the receiver runs on a thread of the SNMP
agent's process: traps are received there, a receiver that cannot start never stops the
polls, and a `kill -9` restarts the source, receiver and all.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from appliance.config import SnmpTarget, parse
from appliance.index import Index, events, snmp_targets
from appliance.index.snmp_targets import to_definition
from appliance.model import Resource, resource_id_for
from appliance.pollsters.snmp import v2c
from appliance.supervise import forked, traps_in_agent
from tests.conftest import wait_for
from tests.snmp import recordings as rec
from tests.snmp.agents import free_udp_port, snmpsim
from tests.test_alarms import Api, Receiver
from tests.test_footprint import _forked
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
    kind = ""  # which receiver runs: "v2c" or "pysnmp"

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


SW1 = {"name": "sw1", "host": "127.0.0.1", "community": COMMUNITY}
UPS = {"name": "ups", "host": "127.0.0.1", "version": "3", "user": "trapper",
       "auth_protocol": "SHA", "auth_key": "auth-pass-1", "priv_protocol": "AES",
       "priv_key": "priv-pass-1", "engine_id": ENGINE_ID}


def write_config(tmp_path: Path, data_dir: Path, targets: list[dict]) -> tuple[Path, int]:
    """A config with ``targets``, the site's UPS trap declared, and a free trap port."""
    defs = tmp_path / "snmp.d"
    defs.mkdir()
    (defs / "ups.yaml").write_text("group: ups-traps\ntraps: [UPS-MIB::upsTrapOnBattery]\n")
    port = free_udp_port()
    config = tmp_path / "appliance.yaml"
    config.write_text(yaml.safe_dump({
        "data_dir": str(data_dir),
        "pollsters": {"snmp": {
            "definitions_dir": str(defs),
            "traps": {"listen": f"127.0.0.1:{port}"},
            "targets": targets,
        }},
    }))
    return config, port


@pytest.fixture(params=["v2c", "pysnmp"])
def daemon(request, tmp_path: Path, settings, store) -> Iterator[TrapDaemon]:
    """The receiver with a v2c target, plus (``pysnmp``) a v3 one, which brings pysnmp's."""
    # A runtime target (as discovery or the API adds them) on another agent port.
    runtime = SnmpTarget(name="edge", host="127.0.0.1", port=1161, community=EDGE_COMMUNITY)
    snmp_targets.put(store.index, "edge", to_definition(runtime), "api", {}, time.time())
    targets = [SW1, UPS] if request.param == "pysnmp" else [SW1]
    config, port = write_config(tmp_path, settings.data_dir, targets)
    d = TrapDaemon(config, port, settings.data_dir)
    assert f"({request.param} receiver)" in d.log.read_text()
    d.kind = request.param
    yield d
    d.stop()


def _v2c(d: TrapDaemon, trap: str, *varbinds: str, community: str = COMMUNITY,
         source: str = "127.0.0.1") -> None:
    d.send("-v2c", "-c", community, f"127.0.0.1:{d.port}", "", trap, *varbinds, source=source)


def _unsupported(d: TrapDaemon) -> None:
    """Well-formed but no SNMPv2-Trap, from a known target with its community: an SNMPv1
    linkDown and a v2c inform (the v2c receiver never answers it: the sender times out)."""
    d.send("-v1", "-c", COMMUNITY, f"127.0.0.1:{d.port}", "1.3.6.1.4.1.99", "127.0.0.1",
           "2", "0", "")
    subprocess.run(["snmpinform", "-v2c", "-c", COMMUNITY, "-t", "0.3", "-r", "0",
                    f"127.0.0.1:{d.port}", "", LINK_DOWN], env={**os.environ, "MIBS": ""},
                   capture_output=True, check=False)


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
        # Neither receiver takes v1 traps or informs (pysnmp could), nor garbage.
        _unsupported(daemon)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"\x30\x03\x02\x01", ("127.0.0.1", daemon.port))
        # Accepted: linkDown on ifIndex 3, a v3 coldStart (on pysnmp's receiver: the v2c
        # one has no v3 user, and rejects it), the site's declared UPS trap.
        _v2c(daemon, LINK_DOWN, f"{IF_TABLE}.1.3", "i", "3", f"{IF_TABLE}.7.3", "i", "1",
             f"{IF_TABLE}.8.3", "i", "2")
        daemon.send(*V3, f"127.0.0.1:{daemon.port}", "", COLD_START)
        _v2c(daemon, UPS_ON_BATTERY)
        _v2c(daemon, "1.3.6.1.6.3.1.1.5.2", community=EDGE_COMMUNITY)  # warmStart
        v3 = daemon.kind == "pysnmp"
        expected = ["snmp.trap.linkDown", "snmp.trap.upsTrapOnBattery", "snmp.trap.warmStart"]
        expected = sorted([*expected, "snmp.trap.coldStart"] if v3 else expected)
        wait_for(lambda: len(events.recent(store.index)) >= len(expected), what="the events")
        time.sleep(0.5)  # anything wrongly accepted would be in by now
        got = {e.event_type: e for e in events.recent(store.index)}
        assert sorted(got) == expected
        assert got["snmp.trap.warmStart"].resource_id == resource_id_for("snmp://edge")
        down = got["snmp.trap.linkDown"]
        assert down.resource_id == interface
        assert down.traits["IF-MIB::ifOperStatus.3"] == 2
        assert down.traits["trap"] == "IF-MIB::linkDown" and down.traits["target"] == "sw1"
        if v3:
            assert got["snmp.trap.coldStart"].resource_id == resource_id_for("snmp://ups")
        assert got["snmp.trap.upsTrapOnBattery"].resource_id == resource_id_for("snmp://sw1")

        status = {r["target"]: r for r in store.index.source_status()
                  if r["source"] == "snmp-traps"}["receiver"]
        counters = status["detail"]
        assert counters["unknown_senders"] == 1 and counters["undeclared"] == 1
        assert counters["events"] == len(expected)
        # The wrong community (and, on the v2c receiver, the v3 trap) never got past the
        # credential check, which counted it.
        assert counters["received"] == len(expected) + 2
        assert counters["rejected_credentials"] == (1 if v3 else 2)
        assert counters["unsupported"] == 2 and counters["malformed"] == 1

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


def _receiver_status(store) -> dict | None:
    rows = [r for r in store.index.source_status() if r["source"] == "snmp-traps"]
    return rows[0]["detail"] if rows else None


def test_the_v2c_receiver_counts_and_drops_what_it_cannot_take(tmp_path: Path, settings,
                                                                store) -> None:
    config, port = write_config(tmp_path, settings.data_dir, [SW1])
    d = TrapDaemon(config, port, settings.data_dir)
    try:
        assert "(v2c receiver)" in d.log.read_text()
        _v2c(d, LINK_DOWN, f"{IF_TABLE}.1.3", "i", "3", community="wrong")
        # Damaged: a trap cut short, one with its varbind list's tag overwritten, garbage.
        trap = v2c.encode_request(COMMUNITY.encode(), 1, v2c.TRAP, [(1, 3, 6, 1, 2, 1, 1, 3, 0)])
        broken = bytearray(trap)
        broken[len(COMMUNITY) + 16] = 0xFF
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for packet in (trap[:-3], bytes(broken), b"\x00" * 40):
                sock.sendto(packet, ("127.0.0.1", port))
        _unsupported(d)
        # Still running: the next good trap (sent last, so counted last) is an event.
        _v2c(d, LINK_DOWN, f"{IF_TABLE}.1.3", "i", "3", f"{IF_TABLE}.8.3", "i", "2")
        counters = wait_for(lambda: (_receiver_status(store) or {}).get("events") == 1
                            and _receiver_status(store), what="the event")
        assert counters["rejected_credentials"] == 1
        assert counters["malformed"] == 3
        assert counters["unsupported"] == 2
        assert counters["received"] == 1 and counters["unknown_senders"] == 0
        assert d.proc.poll() is None
        [event] = events.recent(store.index)
        assert event.resource_id == resource_id_for("snmp://sw1/if/3")
    finally:
        d.stop()


# The workers parent, as `appliance workers` runs it (programs.job preloads, workers forks),
# with one worker, snmp-traps, whose runtime targets are read every 0.2 s.
WORKERS = """\
import sys
from pathlib import Path
from appliance import programs, workers
from appliance.clisettings import load_settings

settings = load_settings(Path(sys.argv[1]), None)
job = programs.job(settings, "snmp-traps")
print("parent has pysnmp:", "pysnmp" in sys.modules, flush=True)


def main():
    switched = job(health_every=0.2)
    print("child has pysnmp:", "pysnmp" in sys.modules, "switched:", switched, flush=True)


workers.freeze_imports()
sys.exit(workers.supervise([workers.Worker("snmp-traps", main)], "traps-test"))
"""


def test_pysnmp_only_once_a_v3_target_exists_then_workers_restarts_the_receiver_on_it(
        tmp_path: Path, settings, store) -> None:
    config, port = write_config(tmp_path, settings.data_dir, [SW1])
    log = tmp_path / "workers.log"
    with log.open("w") as out:
        parent = subprocess.Popen([sys.executable, "-c", WORKERS, str(config)], stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "(v2c receiver)" in log.read_text(), what="the v2c receiver")
        sender = TrapDaemon.__new__(TrapDaemon)  # only its send(): the receiver is forked
        sender.port = port
        _v2c(sender, LINK_DOWN, f"{IF_TABLE}.1.3", "i", "3")
        wait_for(lambda: events.recent(store.index), what="the v2c trap's event")

        ups = SnmpTarget.model_validate(UPS)  # added at run time, as the API adds one
        snmp_targets.put(store.index, "ups", to_definition(ups), "api", {}, time.time())
        wait_for(lambda: "(pysnmp receiver)" in log.read_text(), what="pysnmp's receiver")
        sender.send(*V3, f"127.0.0.1:{port}", "", COLD_START)
        wait_for(lambda: len(events.recent(store.index)) == 2, what="the v3 trap's event")
        got = {e.event_type: e.resource_id for e in events.recent(store.index)}
        assert got["snmp.trap.coldStart"] == resource_id_for("snmp://ups")
    finally:
        parent.send_signal(signal.SIGTERM)
        parent.wait(20)
    text = log.read_text()
    assert "parent has pysnmp: False" in text  # a v2c-only config: the parent never loads it
    assert "child has pysnmp: False switched: True" in text  # nor its v2c receiver
    assert "v3 target ups appeared" in text
    assert "worker snmp-traps" in text and "ended with status 0" in text
    assert "child has pysnmp: True switched: False" in text  # stopped by SIGTERM


def test_the_receiver_runs_in_the_snmp_agent_or_alone_when_discovery_finds_the_targets(
        tmp_path: Path) -> None:
    target = {"name": "sw1", "host": "127.0.0.1"}
    with_targets = parse({"data_dir": str(tmp_path), "pollsters": {"snmp": {"targets": [target]}}})
    assert "poll-snmp" in forked(with_targets) and "snmp-traps" not in forked(with_targets)
    assert traps_in_agent(with_targets)
    assert "snmp-traps" not in forked(parse({"data_dir": str(tmp_path)}))
    sweep = {"networks": ["127.0.0.0/30"]}
    discovery = parse({"data_dir": str(tmp_path), "pollsters": {"snmp": {"discovery": sweep}}})
    assert "snmp-traps" in forked(discovery) and not traps_in_agent(discovery)
    off = parse({"data_dir": str(tmp_path),
                 "pollsters": {"snmp": {"targets": [target], "traps": {"enabled": False}}}})
    assert "snmp-traps" not in forked(off) and not traps_in_agent(off)
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


def test_the_snmp_agent_receives_traps_and_a_receiver_that_cannot_start_never_stops_polling(
        appliance_factory) -> None:
    # The SNMP source in one process: the agent polls, a thread of it receives the traps.
    # Its port is taken at first: the receiver retries on a back-off while the polls go on.
    port = free_udp_port()
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", port))
    recording = rec.render(rec.system("Switch sw1") + rec.interfaces(2, hc=True))
    with snmpsim({COMMUNITY: recording}, COMMUNITY) as sim:
        app = appliance_factory({"pollsters": {
            "host": {"enabled": False},
            "snmp": {"interval": 2, "traps": {"listen": f"127.0.0.1:{port}"},
                     "targets": [{**SW1, "port": sim.port}]}}})
        index = Index(app.data_dir / "index.sqlite")
        try:
            wait_for(lambda: _polled(index) >= 2, timeout=60, what="two polls of sw1")
            names = _forked(app)
            assert "poll-snmp" in names and "snmp-traps" not in names
            wait_for(lambda: "the receiver stopped; starting it again" in
                     app.log_path.read_text(), timeout=30, what="the receiver failing")
            polled = _polled(index)
            wait_for(lambda: _polled(index) > polled, timeout=30, what="the polls going on")
            taken.close()
            sender = TrapDaemon.__new__(TrapDaemon)  # only its send(): the agent receives
            sender.port = port
            _trap_until_recorded(sender, index)
            agent = names["poll-snmp"]
            os.kill(agent, signal.SIGKILL)  # the SNMP source restarts, receiver and all
            wait_for(lambda: _forked(app).get("poll-snmp", agent) != agent, timeout=60,
                     what="the SNMP agent forked again")
            _trap_until_recorded(sender, index)
            polled = _polled(index)
            wait_for(lambda: _polled(index) > polled, timeout=30, what="the new agent polling")
        finally:
            index.close()
            taken.close()


def _polled(index: Index) -> int:
    """Successful polls of sw1 so far (the per-target health the status page shows)."""
    rows = [r for r in index.source_status() if (r["source"], r["target"]) == ("snmp", "sw1")]
    return rows[0]["polls"] - rows[0]["errors"] if rows else 0


def _trap_until_recorded(sender: TrapDaemon, index: Index) -> None:
    """Send warmStart traps from sw1 until one more event is recorded (the receiver may
    still be waiting out its back-off)."""
    before = len(events.recent(index))

    def recorded() -> bool:
        _v2c(sender, "1.3.6.1.6.3.1.1.5.2")
        return len(events.recent(index)) > before

    wait_for(recorded, timeout=90, interval=1.0, what="a trap recorded as an event")
