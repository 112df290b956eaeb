"""Counter wraps and agent restarts, from a real agent through the real store: no spike.

The agent is snmpsim with a settable 32-bit ifInOctets and sysUpTime; the pollster's
output goes through ``store.write`` into RRD DERIVE files via rrdcached. Only the sample
timestamps are moved onto a one-minute grid (the test cannot wait minutes between polls);
values, resources and kinds are what the pollster produced.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator

import pytest
from pysnmp.proto.rfc1902 import Counter32, TimeTicks

from appliance.config import parse
from appliance.model import PollResult
from appliance.pollsters.snmp import build
from appliance.storage.policy import BUILTIN_POLICIES
from tests.snmp import recordings as rec
from tests.snmp.agents import Simulator, snmp_set, snmpsim

IN_OCTETS_1 = f"{rec.IF}.10.1"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
METER = "hardware.network.incoming.bytes"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    device = rec.system("Old32 router") + rec.interfaces(1, hc=False, writable=True)
    with snmpsim({"store32": rec.render(device)}, "store32") as agent:
        yield agent


def test_wrap_and_restart_give_no_spike_in_stored_rates(sim: Simulator, store) -> None:
    settings = parse(
        {
            "pollsters": {
                "snmp": {
                    "targets": [
                        {
                            "name": "r1",
                            "host": "127.0.0.1",
                            "port": sim.port,
                            "community": "store32",
                            "groups": ["system", "if-mib"],
                        }
                    ]
                }
            }
        }
    )
    pollster = build(settings)
    t0 = (int(time.time()) // 60 - 30) * 60
    # (ifInOctets, sysUpTime) per poll: +60000 bytes a minute (1000 B/s), a 32-bit wrap
    # between polls 2 and 3, an agent restart between polls 4 and 5.
    states = [
        (4_294_900_000, 1000),
        (4_294_960_000, 7000),
        (52_704, 13000),
        (112_704, 19000),
        (500, 100),
        (60_500, 6100),
    ]
    try:
        for i, (octets, ticks) in enumerate(states, start=1):
            snmp_set(
                sim.port, "store32", {IN_OCTETS_1: Counter32(octets), SYS_UPTIME: TimeTicks(ticks)}
            )
            result = pollster.poll(["r1"], time.monotonic() + 20)
            assert result.reports[0].ok, result.reports[0].error
            on_grid = [dataclasses.replace(s, timestamp=t0 + 60 * i) for s in result.samples]
            written = store.write(PollResult(on_grid, result.resources, result.reports))
            assert not written.rejected
    finally:
        pollster.close()

    (metric,) = store.index.metrics(name=METER)
    rates = dict(
        store.measures.fetch(metric, BUILTIN_POLICIES["medium"], "max", 60, t0, t0 + 60 * 7)
    )
    # An RRD row is labelled with the end of its minute: poll i's rate sits at t0 + 60 i.
    assert rates[t0 + 120] == pytest.approx(1000)
    assert rates[t0 + 180] == pytest.approx(1000)  # the wrap: unwrapped, a true rate
    assert rates[t0 + 240] == pytest.approx(1000)
    assert t0 + 300 not in rates  # the restart: unknown, not a spike
    assert rates[t0 + 360] == pytest.approx(1000)
    assert max(rates.values()) == pytest.approx(1000)


def _mapping(value: str | dict) -> dict:
    """Index rows hold JSON text; some accessors have decoded it already."""
    return value if isinstance(value, dict) else json.loads(value)


@pytest.fixture
def switch() -> Iterator[Simulator]:
    device = rec.system("Switch fw 1.0") + rec.interfaces(3, hc=True)
    with snmpsim({"switch": rec.render(device)}, "switch") as agent:
        yield agent


def test_firmware_upgrade_and_vanished_interface_become_history(switch: Simulator, store) -> None:
    settings = parse(
        {
            "pollsters": {
                "snmp": {
                    "targets": [
                        {
                            "name": "sw",
                            "host": "127.0.0.1",
                            "port": switch.port,
                            "community": "switch",
                            "groups": ["system", "if-mib"],
                        }
                    ]
                }
            }
        }
    )
    pollster = build(settings)
    try:
        first = pollster.poll(["sw"], time.monotonic() + 20)
        store.write(first)
        upgraded = rec.system("Switch fw 2.0") + rec.interfaces(2, hc=True)
        switch.rewrite("switch", rec.render(upgraded))
        second = pollster.poll(["sw"], time.monotonic() + 20)
        assert not store.write(second).rejected
        store.index.record_reports(second.reports)
    finally:
        pollster.close()
    device = next(s.resource for s in first.samples if s.resource.type == "snmp_device")
    revisions = [_mapping(h["attributes"])["descr"] for h in store.index.history(device.id)]
    assert revisions == ["Switch fw 1.0", "Switch fw 2.0"]
    gone = next(
        s.resource for s in first.samples if s.resource.original_resource_id == "snmp://sw/if/3"
    )
    assert store.index.resource(gone.id)["ended_at"] is not None
    kept = next(
        s.resource for s in first.samples if s.resource.original_resource_id == "snmp://sw/if/2"
    )
    assert store.index.resource(kept.id)["ended_at"] is None
    (status,) = [s for s in store.index.source_status() if s["target"] == "sw"]
    assert _mapping(status["detail"])["pdus"] >= 3
