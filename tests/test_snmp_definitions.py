"""SNMP meter definitions, converters and counter continuity: the parts without I/O."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.model import Kind
from appliance.pollsters.snmp.client import Cell
from appliance.pollsters.snmp.converters import CONVERTERS
from appliance.pollsters.snmp.counters import CounterTracker
from appliance.pollsters.snmp.definitions import (
    DefinitionError,
    candidates_for,
    load_file,
    load_groups,
    parse_oid,
    select,
)
from appliance.pollsters.snmp.walkplan import (
    FULL_WALK_EVERY,
    attribute_only_columns,
    is_full_walk,
    table_columns,
    unneeded_fallbacks,
)

NET_SNMP = "1.3.6.1.4.1.8072.3.2.10"


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


def test_shipped_groups_load_with_ceilometer_names() -> None:
    groups = load_groups()
    assert set(groups) >= {"system", "if-mib", "host-resources", "ucd-snmp", "ucd-diskio"}
    assert "lm-sensors" in groups
    names = {
        m.name
        for g in groups.values()
        for m in [*g.spec.device.meters, *(m for t in g.spec.tables for m in t.meters)]
    }
    assert {
        "hardware.network.incoming.bytes",
        "hardware.cpu.load.1min",
        "hardware.memory.used",
        "hardware.disk.size.total",
        "hardware.disk.read.bytes",
        "hardware.sensor.temperature",
        "hardware.sensor.fan",
        "hardware.sensor.voltage",
    } <= names


def test_interface_bytes_prefer_64_bit_columns() -> None:
    table = load_groups()["if-mib"].spec.tables[0]
    incoming = next(m for m in table.meters if m.name == "hardware.network.incoming.bytes")
    assert [s.oid for s in incoming.oid] == [
        parse_oid("1.3.6.1.2.1.31.1.1.1.6"),  # ifHCInOctets first
        parse_oid("1.3.6.1.2.1.2.2.1.10"),
    ]
    assert incoming.kind is Kind.CUMULATIVE


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("device: {meters: [{name: m, unit: B, kind: gauge, oid: ifInOctets}]}", "numeric OID"),
        (
            "device: {meters: [{name: m, unit: B, kind: gauge, oid: 1.3.6, convert: eval}]}",
            "unknown converter 'eval'",
        ),
        ("device: {attributes: {a: {const: x, target: name}}}", "exactly one of"),
        ("device: {meters: [{name: m, unit: B, kind: rate, oid: 1.3.6}]}", "kind"),
        ("tables: [{type: t, key: k, meters: []}]", "at least 1"),
        ("colour: blue", "colour"),
    ],
)
def test_bad_definitions_are_rejected_with_file_and_key(
    tmp_path: Path, body: str, message: str
) -> None:
    path = _write(tmp_path, "bad", f"group: bad\n{body}\n")
    with pytest.raises(DefinitionError) as err:
        load_file(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_site_group_replaces_shipped_group_of_same_name(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "mine",
        "group: system\ndevice: {meters: [{name: x.up, unit: s, kind: gauge, "
        "oid: 1.3.6.1.2.1.1.3.0}]}\n",
    )
    groups = load_groups(tmp_path)
    assert [m.name for m in groups["system"].spec.device.meters] == ["x.up"]
    assert "if-mib" in groups


def test_device_specific_group_replaces_generic_one_of_its_family(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "acme-if",
        "group: acme-if\nfamily: interfaces\ndevices: {sys_object_id: ['1.3.6.1.4.1.99999.*']}\n"
        "tables: [{type: snmp_interface, key: if, meters: [{name: acme.bytes, unit: B, "
        "kind: cumulative, oid: 1.3.6.1.4.1.99999.1.1.1.2}]}]\n",
    )
    groups = load_groups(tmp_path)
    acme = {g.name for g in select(groups, [], "1.3.6.1.4.1.99999.5", "ACME switch")}
    other = {g.name for g in select(groups, [], NET_SNMP, "Linux")}
    assert "acme-if" in acme and "if-mib" not in acme
    assert "if-mib" in other and "acme-if" not in other
    by_descr = {g.name for g in select(groups, ["if-mib", "acme-if"], "1.3.6.1.4.1.1", "x")}
    assert by_descr == {"if-mib"}


def test_unknown_group_name_is_an_error() -> None:
    with pytest.raises(DefinitionError, match="unknown definition groups: nope"):
        candidates_for(load_groups(), ["system", "nope"])


def test_converters() -> None:
    assert CONVERTERS["mac"](bytes.fromhex("525400a1b2c3")) == "52:54:00:a1:b2:c3"
    assert CONVERTERS["text"](b"eth0\x00") == "eth0"
    assert CONVERTERS["complement_percent"](7) == 93.0
    assert CONVERTERS["if_status"](2) == "down"
    assert CONVERTERS["hr_storage_type"]("1.3.6.1.2.1.25.2.1.4") == "fixedDisk"
    with pytest.raises(ValueError):
        CONVERTERS["number"](b"12")


def test_counter32_wrap_is_unwrapped_and_restart_resets() -> None:
    tracker = CounterTracker()
    assert not tracker.observe_uptime(1000)
    assert tracker.unwrap("k", 4_294_967_000, 32) == 4_294_967_000
    assert not tracker.observe_uptime(7000)
    assert tracker.unwrap("k", 200, 32) == 4_294_967_296 + 200  # wrapped: continues
    assert tracker.unwrap("k", 500, 32) == 4_294_967_296 + 500
    assert tracker.observe_uptime(300)  # sysUpTime went back: the agent restarted
    assert tracker.unwrap("k", 100, 32) == 100  # a real reset, left for DERIVE to skip


def test_counter64_decrease_is_passed_through() -> None:
    tracker = CounterTracker()
    assert tracker.unwrap("k", 10**15, 64) == 10**15
    assert tracker.unwrap("k", 5, 64) == 5


def test_forgotten_counters_start_afresh() -> None:
    tracker = CounterTracker()
    tracker.unwrap("a", 100, 32)
    tracker.unwrap("a", 50, 32)
    tracker.forget(set())
    assert tracker.unwrap("a", 40, 32) == 40


def _cells(column: str, *indexes: int) -> dict[tuple[int, ...], dict[tuple[int, ...], Cell]]:
    return {parse_oid(column): {(i,): Cell(1, 64) for i in indexes}}


def test_fallback_columns_are_spared_only_when_every_row_has_the_preferred_one() -> None:
    groups = [load_groups()["if-mib"]]
    hc_in, in32 = "1.3.6.1.2.1.31.1.1.1.6", "1.3.6.1.2.1.2.2.1.10"
    complete = _cells(hc_in, 1, 2) | _cells(in32, 1, 2)
    assert parse_oid(in32) in unneeded_fallbacks(groups, complete)
    partial = _cells(hc_in, 1) | _cells(in32, 1, 2)  # row 2 has no 64-bit counter
    assert parse_oid(in32) not in unneeded_fallbacks(groups, partial)
    # ifDescr is the fallback of `name` but the source of `descr`: never spared.
    descr = parse_oid("1.3.6.1.2.1.2.2.1.2")
    assert descr not in unneeded_fallbacks(
        groups, complete | _cells("1.3.6.1.2.1.31.1.1.1.1", 1, 2)
    )
    walked = table_columns(groups, unneeded_fallbacks(groups, complete))
    assert parse_oid(in32) not in walked[parse_oid("1.3.6.1.2.1.2.2.1")]


def test_attribute_only_columns_exclude_those_a_meter_reads() -> None:
    slow = attribute_only_columns([load_groups()["if-mib"]])
    assert parse_oid("1.3.6.1.2.1.31.1.1.1.18") in slow  # ifAlias
    assert parse_oid("1.3.6.1.2.1.2.2.1.8") not in slow  # ifOperStatus: also a meter


def test_full_walks_come_every_period_and_are_spread_over_targets() -> None:
    names = [f"switch-{i}" for i in range(50)]
    assert all(is_full_walk(n, 0) for n in names)  # nothing known yet about a device
    for name in names:
        fulls = [p for p in range(1, 1 + 3 * FULL_WALK_EVERY) if is_full_walk(name, p)]
        assert len(fulls) == 3 and fulls[1] - fulls[0] == FULL_WALK_EVERY
    per_cycle = [sum(is_full_walk(n, p) for n in names) for p in range(1, 1 + FULL_WALK_EVERY)]
    assert max(per_cycle) < len(names) / 2
