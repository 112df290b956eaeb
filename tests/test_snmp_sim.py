"""The SNMP pollster against snmpsim serving our own recordings: 64-bit and 32-bit-only
devices, LM-SENSORS rows, a table larger than one PDU, vanished interfaces, counter wraps,
agent restarts, slow and dead agents under a deadline, and max-repetitions backoff."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pysnmp.proto.rfc1902 import Counter32, TimeTicks

from appliance.config import parse
from appliance.model import PollResult, Sample
from appliance.pollsters.snmp import SnmpPollster, build
from appliance.pollsters.snmp.definitions import load_groups
from appliance.pollsters.snmp.walkplan import FULL_WALK_EVERY, table_columns
from tests.snmp import recordings as rec
from tests.snmp.agents import (
    Simulator,
    free_udp_port,
    poll,
    poll_and_close,
    snmp_set,
    snmpsim,
    udp_proxy,
)

IN_OCTETS_1 = f"{rec.IF}.10.1"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
DEVICES = {
    "dev64": rec.system("Switch64 fw 1.0") + rec.interfaces(4, hc=True),
    "dev32": rec.system("Old32 router") + rec.interfaces(3, hc=False),
    "wrap32": rec.system("Old32 router") + rec.interfaces(2, hc=False, writable=True),
    "sensors": rec.system("Linux sensors box") + rec.sensors(),
    "big": rec.system("Big switch") + rec.interfaces(60, hc=True),
    "gone": rec.system("Switch") + rec.interfaces(3, hc=True),
    "grow": rec.system("Switch") + rec.interfaces(2, hc=True),
}


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with snmpsim({c: rec.render(r) for c, r in DEVICES.items()}, "dev64") as agent:
        yield agent


def _target(name: str, port: int, community: str | None = None, **kw: Any) -> dict[str, Any]:
    return {"name": name, "host": "127.0.0.1", "port": port, "community": community or name, **kw}


def _pollster(*targets: dict[str, Any]) -> SnmpPollster:
    return build(parse({"pollsters": {"snmp": {"targets": list(targets)}}}))


def _values(result: PollResult, metric: str, rtype: str = "snmp_interface") -> dict[str, Sample]:
    return {
        s.resource.original_resource_id: s
        for s in result.samples
        if s.metric_name == metric and s.resource.type == rtype
    }


def test_64_bit_counters_are_preferred_and_32_bit_used_without_them(sim: Simulator) -> None:
    pollster = _pollster(_target("dev64", sim.port), _target("dev32", sim.port))
    result = poll_and_close(pollster)
    assert all(r.ok for r in result.reports), [r.error for r in result.reports]
    incoming = _values(result, "hardware.network.incoming.bytes")
    assert incoming["snmp://dev64/if/2"].value == 5_000_000_000_000 + 2000  # ifHCInOctets
    assert incoming["snmp://dev32/if/2"].value == 2000  # ifInOctets
    assert incoming["snmp://dev64/if/2"].unit == "B"
    assert len([k for k in incoming if k.startswith("snmp://dev64/")]) == 4
    iface = incoming["snmp://dev64/if/2"].resource
    assert iface.attributes["name"] == "eth1"
    assert iface.attributes["alias"] == "uplink 2"
    assert iface.attributes["speed"] == 1e9  # ifHighSpeed (Mbit/s) x 1e6
    assert iface.attributes["mac"] == "52:54:00:00:00:02"
    old = incoming["snmp://dev32/if/2"].resource
    assert old.attributes["name"] == "eth1"  # no ifName: ifDescr
    assert old.attributes["speed"] == 1e8  # ifSpeed
    status = _values(result, "hardware.network.oper_status")
    assert status["snmp://dev64/if/1"].value == 1.0
    device = _values(result, "hardware.uptime", "snmp_device")["snmp://dev64"].resource
    assert iface.attributes["device_id"] == device.id
    assert device.attributes["descr"] == "Switch64 fw 1.0"


def test_later_polls_skip_32_bit_columns_a_64_bit_device_does_not_need(sim: Simulator) -> None:
    pollster = _pollster(
        _target("dev64", sim.port, groups=["if-mib"]), _target("dev32", sim.port, groups=["if-mib"])
    )
    try:
        first, second = poll(pollster), poll(pollster)
    finally:
        pollster.close()
    reports = {r.target: r.detail for r in second.reports}
    assert reports["dev64"]["fallback_columns_skipped"] >= 4  # ifInOctets, ifOutOctets...
    assert reports["dev32"]["fallback_columns_skipped"] == 0  # it has nothing better
    key = "snmp://dev64/if/3"
    assert _values(second, "hardware.network.incoming.bytes")[key].value == (
        _values(first, "hardware.network.incoming.bytes")[key].value
    )
    assert _values(second, "hardware.network.incoming.bytes")["snmp://dev32/if/3"].value == 3000
    assert len(second.samples) == len(first.samples)


def test_lm_sensors_rows_become_sensor_resources_like_hwmon(sim: Simulator) -> None:
    pollster = _pollster(_target("sensors", sim.port))
    result = poll_and_close(pollster)
    got = {
        (s.metric_name, s.resource.attributes["label"]): (pytest.approx(s.value), s.unit)
        for s in result.samples
        if s.resource.type == "sensor"
    }
    assert got == {
        ("hardware.sensor.temperature", "Core 0"): (45.0, "C"),
        ("hardware.sensor.temperature", "Core 1"): (47.5, "C"),
        ("hardware.sensor.fan", "fan1"): (1200.0, "RPM"),
        ("hardware.sensor.voltage", "in0"): (1.2, "V"),
        ("hardware.sensor.power", "power1"): (95.5, "W"),
        ("hardware.sensor.current", "curr1"): (2.3, "A"),
    }
    sensor = next(s.resource for s in result.samples if s.resource.type == "sensor")
    assert {"chip", "label", "host", "source"} <= set(sensor.attributes)
    assert sensor.attributes["source"] == "snmp"
    assert sensor.attributes["host"] == "sensors"


def test_table_larger_than_one_pdu_is_walked_in_few_pdus(sim: Simulator) -> None:
    """60 interfaces, max-repetitions 10: a walk of C columns costs at most
    ceil(60 x C / 10) + 1 PDUs, even though snmpsim cuts responses at 64 varbinds."""
    pollster = _pollster(_target("big", sim.port, max_repetitions=10, groups=["if-mib"]))
    result = poll_and_close(pollster)
    (report,) = result.reports
    assert report.ok, report.error
    assert len(_values(result, "hardware.network.incoming.bytes")) == 60
    tables = table_columns([load_groups()["if-mib"]])  # ifTable and ifXTable
    assert len(tables) == 2
    bound = 1 + sum(math.ceil(60 * len(columns) / 10) + 1 for columns in tables.values())
    assert report.detail["pdus"] <= bound  # one GET + one walk of each table
    assert report.detail["pdus"] < 60 // 2  # far fewer than one request per row


def test_vanished_interface_is_ended_and_ids_are_stable(sim: Simulator) -> None:
    pollster = _pollster(_target("gone", sim.port))
    try:
        first = poll(pollster)
        sim.rewrite("gone", rec.render(rec.system("Switch") + rec.interfaces(2, hc=True)))
        second = poll(pollster)
        third = poll(pollster)
    finally:
        pollster.close()
    ids = {s.resource.original_resource_id: s.resource.id for s in first.samples}
    assert {s.resource.id for s in second.samples} <= set(ids.values())
    ended = [r for r in second.resources if r.ended_at is not None]
    assert [r.original_resource_id for r in ended] == ["snmp://gone/if/3"]
    assert ended[0].id == ids["snmp://gone/if/3"]
    assert ended[0].attributes["name"] == "eth2"
    assert second.reports[0].detail["ended"] == 1
    assert not [r for r in third.resources if r.ended_at is not None]  # ended once


def test_attributes_are_walked_in_full_polls_and_read_for_new_rows(sim: Simulator) -> None:
    pollster = _pollster(_target("grow", sim.port, groups=["if-mib"]))
    grown = [
        (oid, tag, "renamed" if oid == f"{rec.IFX}.18.1" else value)
        for oid, tag, value in rec.system("Switch") + rec.interfaces(3, hc=True)
    ]

    def aliases(result: PollResult) -> dict[str, str]:
        return {
            key: s.resource.attributes["alias"]
            for key, s in _values(result, "hardware.network.incoming.bytes").items()
        }

    try:
        first = poll(pollster)
        sim.rewrite("grow", rec.render(grown))
        second = poll(pollster)
        between, full = [], poll(pollster)
        while full.reports[0].detail["attribute_columns_skipped"]:
            between.append(full)
            full = poll(pollster)
    finally:
        pollster.close()
    assert aliases(first) == {"snmp://grow/if/1": "uplink 1", "snmp://grow/if/2": "uplink 2"}
    # Not walked in between: the alias change waits for the next full poll, while the
    # new interface's attributes are read at once.
    assert second.reports[0].detail["attribute_columns_skipped"] >= 6
    assert aliases(second) == {
        "snmp://grow/if/1": "uplink 1",
        "snmp://grow/if/2": "uplink 2",
        "snmp://grow/if/3": "uplink 3",
    }
    new = _values(second, "hardware.network.incoming.bytes")["snmp://grow/if/3"].resource
    assert new.attributes["name"] == "eth2" and new.attributes["mac"] == "52:54:00:00:00:03"
    assert all(aliases(r)["snmp://grow/if/1"] == "uplink 1" for r in between)
    assert len(between) <= FULL_WALK_EVERY - 2
    assert aliases(full)["snmp://grow/if/1"] == "renamed"


def test_32_bit_wrap_continues_and_restart_resets(sim: Simulator) -> None:
    pollster = _pollster(_target("wrap32", sim.port))

    def poll_in_octets() -> tuple[float, bool]:
        result = poll(pollster)
        (report,) = result.reports
        assert report.ok, report.error
        return (
            _values(result, "hardware.network.incoming.bytes")["snmp://wrap32/if/1"].value,
            report.detail["restarted"],
        )

    try:
        snmp_set(
            sim.port, "wrap32", {IN_OCTETS_1: Counter32(4_294_900_000), SYS_UPTIME: TimeTicks(1000)}
        )
        assert poll_in_octets() == (4_294_900_000, False)
        snmp_set(sim.port, "wrap32", {IN_OCTETS_1: Counter32(52_704), SYS_UPTIME: TimeTicks(7000)})
        assert poll_in_octets() == (2**32 + 52_704, False)  # wrapped once: continued
        snmp_set(sim.port, "wrap32", {IN_OCTETS_1: Counter32(500), SYS_UPTIME: TimeTicks(100)})
        assert poll_in_octets() == (500, True)  # restarted: a real reset, not a wrap
    finally:
        pollster.close()


def test_slow_dead_and_garbling_agents_do_not_delay_the_others(sim: Simulator) -> None:
    """The slow agent answers every request, 1 s late: its dozen requests cannot finish
    within the 6 s deadline. The dead one never answers; the garbling one answers bytes
    that are not SNMP. All are reported; the healthy ones finish with data in the same poll."""
    with (
        udp_proxy(sim.port, delay=1.0) as slow_port,
        udp_proxy(sim.port, garble=True) as garbling_port,
    ):
        pollster = _pollster(
            _target("dev64", sim.port),
            _target("slow", slow_port, community="dev64", timeout=3),
            _target("dead", free_udp_port(), community="dev64", timeout=1, retries=0),
            _target("garbage", garbling_port, community="dev64", timeout=1, retries=0),
            _target("sensors", sim.port),
        )
        try:
            pollster.poll(["dev64"], time.monotonic() + 20)  # warm up pysnmp's own imports
            result = poll(pollster, seconds=6)
        finally:
            pollster.close()
    reports = {r.target: r for r in result.reports}
    assert reports["dev64"].ok and reports["dev64"].samples > 0
    assert reports["sensors"].ok and reports["sensors"].samples > 0
    assert reports["slow"].error is not None and "deadline exceeded" in reports["slow"].error
    assert reports["slow"].detail["pdus"] >= 1
    assert reports["dead"].error is not None and "no response" in reports["dead"].error
    assert reports["garbage"].error is not None and "no response" in reports["garbage"].error
    assert {s.resource.original_resource_id.split("/")[2] for s in result.samples} == {
        "dev64",
        "sensors",
    }


def test_max_repetitions_backs_off_when_large_replies_are_lost(sim: Simulator) -> None:
    """A path that drops datagrams over 1200 bytes: bulk replies of 25 rows never arrive.
    The pollster halves max-repetitions until replies fit, and keeps the value that worked."""
    with udp_proxy(sim.port, max_reply_bytes=1200) as port:
        pollster = _pollster(
            _target("lossy", port, community="big", timeout=1, retries=0, groups=["if-mib"])
        )
        try:
            first = poll(pollster)
            second = poll(pollster)
        finally:
            pollster.close()
    (report,) = first.reports
    assert report.ok, report.error
    assert report.detail["backoffs"] >= 1
    assert report.detail["max_repetitions"] < 25
    assert len(_values(first, "hardware.network.incoming.bytes")) == 60
    assert second.reports[0].ok
    assert second.reports[0].detail["backoffs"] == 0  # remembered what worked
    assert second.reports[0].detail["max_repetitions"] == report.detail["max_repetitions"]
