"""The SNMP pollster against a real net-snmp snmpd: v2c, v3 authPriv/authNoPriv, bad
credentials, a closed port, and the PDU cost of table walks."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.config import parse
from appliance.pollsters.snmp import SnmpPollster, build
from tests.snmp.agents import free_udp_port, poll, poll_and_close, snmpd

COMMUNITY = "s3cret-community-9f"
AUTH_KEY, PRIV_KEY = "auth-key-6d1e0b", "priv-key-c47a2f"


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    users = [f"privuser SHA {AUTH_KEY} AES {PRIV_KEY}", f"authuser SHA {AUTH_KEY}"]
    with snmpd(tmp_path_factory.mktemp("snmpd"), COMMUNITY, users) as port:
        yield port


def _pollster(*targets: dict[str, Any]) -> SnmpPollster:
    return build(parse({"pollsters": {"snmp": {"targets": list(targets)}}}))


def _v3(name: str, port: int, **kw: Any) -> dict[str, Any]:
    return {"name": name, "host": "127.0.0.1", "port": port, "version": "3", **kw}


def test_v2c_poll_reads_device_interfaces_and_ucd_meters(agent: int) -> None:
    pollster = _pollster(
        {"name": "local", "host": "127.0.0.1", "port": agent, "community": COMMUNITY}
    )
    result = poll_and_close(pollster)
    (report,) = result.reports
    assert report.ok, report.error
    assert report.samples == len(result.samples) > 0
    assert report.detail["pdus"] >= 2
    by_name = {(s.resource.type, s.metric_name): s for s in result.samples}
    device = by_name[("snmp_device", "hardware.uptime")].resource
    assert device.original_resource_id == "snmp://local"
    assert device.attributes["object_id"] == "1.3.6.1.4.1.8072.3.2.10"
    assert device.attributes["descr"].startswith("Linux")
    assert by_name[("snmp_device", "hardware.memory.total")].value > 0
    assert by_name[("snmp_device", "hardware.memory.total")].unit == "B"
    assert ("snmp_device", "hardware.cpu.load.1min") in by_name
    loopback = [
        s.resource
        for s in result.samples
        if s.resource.type == "snmp_interface" and s.resource.attributes.get("name") == "lo"
    ]
    assert loopback and loopback[0].original_resource_id.startswith("snmp://local/if/")
    assert loopback[0].attributes["oper_status"] == "up"
    assert ("snmp_storage", "hardware.storage.size") in by_name
    assert ("snmp_disk", "hardware.disk.read.bytes") in by_name


def test_v3_auth_priv_and_auth_no_priv(agent: int) -> None:
    pollster = _pollster(
        _v3(
            "priv",
            agent,
            user="privuser",
            auth_protocol="SHA",
            auth_key=AUTH_KEY,
            priv_protocol="AES",
            priv_key=PRIV_KEY,
        ),
        _v3("auth", agent, user="authuser", auth_protocol="SHA", auth_key=AUTH_KEY),
    )
    result = poll_and_close(pollster)
    assert {r.target: r.error for r in result.reports} == {"priv": None, "auth": None}
    assert {r.target: r.samples > 0 for r in result.reports} == {"priv": True, "auth": True}


def test_bad_credentials_and_closed_port_are_clear_per_target_errors(agent: int) -> None:
    wrong = "wrong-key-0a9b8c7d"
    fast = {"timeout": 0.5, "retries": 0}
    pollster = _pollster(
        {"name": "good", "host": "127.0.0.1", "port": agent, "community": COMMUNITY},
        {
            "name": "community",
            "host": "127.0.0.1",
            "port": agent,
            "community": "not-the-community-x",
            **fast,
        },
        _v3(
            "authkey",
            agent,
            user="privuser",
            auth_protocol="SHA",
            auth_key=wrong,
            priv_protocol="AES",
            priv_key=PRIV_KEY,
            **fast,
        ),
        _v3("user", agent, user="nobody-here", auth_protocol="SHA", auth_key=AUTH_KEY, **fast),
        {"name": "closed", "host": "127.0.0.1", "port": free_udp_port(), **fast},
        {"name": "nxdomain", "host": "no-such-host.invalid", **fast},
    )
    result = poll_and_close(pollster)
    errors = {r.target: r.error for r in result.reports}
    assert errors["good"] is None
    assert "no response" in errors["community"] and "community" in errors["community"]
    assert "wrong v3 auth key" in errors["authkey"]
    assert "unknown v3 user" in errors["user"]
    assert "no response" in errors["closed"]
    assert "cannot resolve no-such-host.invalid" in errors["nxdomain"]
    text = repr(result.reports)
    for secret in (COMMUNITY, "not-the-community-x", wrong, AUTH_KEY, PRIV_KEY):
        assert secret not in text


def test_only_the_requested_targets_are_polled(agent: int) -> None:
    pollster = _pollster(
        {"name": "a", "host": "127.0.0.1", "port": agent, "community": COMMUNITY},
        {"name": "b", "host": "127.0.0.1", "port": agent, "community": COMMUNITY},
    )
    try:
        result = pollster.poll(["b", "zz"], time.monotonic() + 20)
    finally:
        pollster.close()
    errors = {r.target: r.error for r in result.reports}
    assert errors == {"b": None, "zz": "unknown target 'zz'"}
    assert {s.resource.original_resource_id.split("/")[2] for s in result.samples} == {"b"}


def test_a_walk_costs_at_most_one_pdu_per_max_repetitions_rows(agent: int) -> None:
    """hrStorage has a dozen rows here: with 2 repetitions per PDU, one walk of its five
    columns costs ceil(rows / 2) + 1 requests, plus the one GET of scalars."""
    pollster = _pollster(
        {
            "name": "t",
            "host": "127.0.0.1",
            "port": agent,
            "community": COMMUNITY,
            "max_repetitions": 2,
            "groups": ["host-resources"],
        }
    )
    result = poll_and_close(pollster)
    (report,) = result.reports
    assert report.ok, report.error
    storage_rows = len({s.resource.id for s in result.samples if s.resource.type == "snmp_storage"})
    processor_rows = len(
        {s.resource.id for s in result.samples if s.resource.type == "snmp_processor"}
    )
    assert storage_rows > 4
    walks = (math.ceil(storage_rows / 2) + 1) + (math.ceil(processor_rows / 2) + 1)
    assert report.detail["pdus"] <= 1 + walks


def test_target_with_a_longer_interval_sits_out_the_cycles_between(agent: int) -> None:
    pollster = _pollster(
        {
            "name": "every",
            "host": "127.0.0.1",
            "port": agent,
            "community": COMMUNITY,
            "groups": ["system"],
        },
        {
            "name": "hourly",
            "host": "127.0.0.1",
            "port": agent,
            "community": COMMUNITY,
            "groups": ["system"],
            "interval": 3600,
        },
    )
    try:
        first, second = poll(pollster), poll(pollster)
    finally:
        pollster.close()
    assert {r.target for r in first.reports} == {"every", "hourly"}
    assert {r.target for r in second.reports} == {"every"}


def test_site_definitions_dir_adds_groups(agent: int, tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text(
        "group: site-contact\n"
        "device:\n"
        "  attributes: {owner: {oid: 1.3.6.1.2.1.1.4.0}}\n"
        "  meters: [{name: site.uptime.ticks, unit: tick, kind: gauge, oid: 1.3.6.1.2.1.1.3.0}]\n"
    )
    settings = parse(
        {
            "pollsters": {
                "snmp": {
                    "definitions_dir": str(tmp_path),
                    "targets": [
                        {
                            "name": "t",
                            "host": "127.0.0.1",
                            "port": agent,
                            "community": COMMUNITY,
                            "groups": ["site-contact"],
                        }
                    ],
                }
            }
        }
    )
    pollster = build(settings)
    result = poll_and_close(pollster)
    assert result.reports[0].ok, result.reports[0].error
    (sample,) = result.samples
    assert sample.metric_name == "site.uptime.ticks" and sample.value > 0
    assert sample.resource.attributes == {"owner": "ops@example.net"}
