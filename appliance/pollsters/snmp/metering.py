"""What was read -> resources and samples, as the definitions say (no I/O here).

The client hands over cells by OID; this module applies the definitions: the first source
the agent has (64-bit before 32-bit), the named converter, the scale, the ``combine``
operation, the ``where`` filters; builds one resource per device and per table row with a
stable id; and passes cumulative values through the target's :class:`CounterTracker`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from appliance.config import SnmpTarget
from appliance.model import Kind, Resource, Sample, resource_id_for
from appliance.pollsters.snmp.client import Cell
from appliance.pollsters.snmp.converters import CONVERTERS, Converted, number
from appliance.pollsters.snmp.counters import CounterTracker
from appliance.pollsters.snmp.definitions import (
    AttributeSpec,
    Group,
    MeterSpec,
    Oid,
    Source,
    TableSpec,
)

DEVICE_TYPE = "snmp_device"
Lookup = Callable[[Oid], Cell | None]


@dataclass
class Reading:
    """Everything read from one target in one poll."""

    scalars: dict[Oid, Cell] = field(default_factory=dict)
    tables: dict[Oid, dict[Oid, Cell]] = field(default_factory=dict)  # column -> index -> cell


@dataclass
class Measured:
    """Samples, the resources that have them, and resources read without any value."""

    samples: list[Sample] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)
    counter_keys: set[Any] = field(default_factory=set)


def device_key(target: SnmpTarget) -> str:
    return f"snmp://{target.name}"


def row_key(target: SnmpTarget, table: TableSpec, index: Oid) -> str:
    return f"snmp://{target.name}/{table.key}/{'.'.join(map(str, index))}"


def measure(
    target: SnmpTarget,
    groups: list[Group],
    reading: Reading,
    tracker: CounterTracker,
    timestamp: float,
    known: dict[str, dict[str, Any]] | None = None,
) -> Measured:
    """Apply ``groups`` to ``reading``: one device resource plus one per table row.

    ``known`` holds row attributes from an earlier poll, by resource id: the base that
    this reading's attributes update (a poll that did not walk attribute columns).
    """
    out = Measured()
    device = Resource.from_key(DEVICE_TYPE, device_key(target))
    device_meters: list[MeterSpec] = []
    for group in groups:
        for name, spec in group.spec.device.attributes.items():
            _set_attribute(device.attributes, name, spec, target, reading.scalars.get)
        device_meters.extend(group.spec.device.meters)
    _meter(out, device, device_meters, reading.scalars.get, tracker, timestamp)

    for group in groups:
        for table in group.spec.tables:
            for index in _row_indexes(table, reading.tables):
                cell_at = _row_lookup(reading.tables, index)
                resource = Resource.from_key(table.type, row_key(target, table, index))
                resource.attributes.update((known or {}).get(resource.id, {}))
                resource.attributes["index"] = ".".join(map(str, index))
                for name, spec in table.attributes.items():
                    _set_attribute(resource.attributes, name, spec, target, cell_at)
                _meter(out, resource, table.meters, cell_at, tracker, timestamp)
    return out


def _row_lookup(tables: dict[Oid, dict[Oid, Cell]], index: Oid) -> Lookup:
    """Cells of one row, by column OID."""

    def cell_at(column: Oid) -> Cell | None:
        return tables.get(column, {}).get(index)

    return cell_at


def _row_indexes(table: TableSpec, tables: dict[Oid, dict[Oid, Cell]]) -> list[Oid]:
    """Every row index any of the table's meter columns has, in index order."""
    indexes: set[Oid] = set()
    for meter in table.meters:
        for oid in meter.oids():
            indexes.update(tables.get(oid, {}))
    return sorted(indexes)


def _meter(
    out: Measured,
    resource: Resource,
    meters: list[MeterSpec],
    lookup: Lookup,
    tracker: CounterTracker,
    timestamp: float,
) -> None:
    before = len(out.samples)
    for meter in meters:
        if not _where(meter, resource.attributes):
            continue
        value = _meter_value(meter, resource, lookup, tracker, out.counter_keys)
        if value is not None:
            out.samples.append(
                Sample(resource, meter.name, meter.unit, meter.kind, value, timestamp)
            )
    if len(out.samples) == before and resource.type == DEVICE_TYPE:
        out.resources.append(resource)  # the device is known even when it has no value


def _where(meter: MeterSpec, attributes: dict[str, Any]) -> bool:
    return all(
        name in attributes and re.search(pattern, str(attributes[name])) is not None
        for name, pattern in meter.where.items()
    )


def _first(sources: tuple[Source, ...], lookup: Lookup) -> tuple[Source, Cell] | None:
    """The first source the agent answered (sources are listed in order of preference)."""
    for source in sources:
        cell = lookup(source.oid)
        if cell is not None:
            return source, cell
    return None


def _meter_value(
    meter: MeterSpec,
    resource: Resource,
    lookup: Lookup,
    tracker: CounterTracker,
    counter_keys: set[Any],
) -> float | None:
    found = _first(meter.oid, lookup)
    if found is None:
        return None
    source, cell = found
    raw = cell.value
    if meter.kind is Kind.CUMULATIVE and cell.counter_bits and isinstance(raw, int):
        key = (resource.id, meter.name, source.oid)
        raw = tracker.unwrap(key, raw, cell.counter_bits)
        counter_keys.add(key)
    try:
        value = float(CONVERTERS[meter.convert](raw)) * source.scale
        if meter.combine is not None:
            other = _first(meter.combine.oid, lookup)
            if other is None:
                return None
            operand = number(other[1].value) * other[0].scale
            value = value - operand if meter.combine.op == "minus" else value * operand
    except ValueError:
        return None  # the agent sent a value of the wrong type: skip it, not the poll
    return value * meter.scale


def _set_attribute(
    attributes: dict[str, Any],
    name: str,
    spec: AttributeSpec,
    target: SnmpTarget,
    lookup: Lookup,
) -> None:
    value: Converted | None
    if spec.const is not None:
        value = spec.const
    elif spec.target == "device_id":
        value = resource_id_for(device_key(target))
    elif spec.target is not None:
        value = getattr(target, spec.target)
    else:
        found = _first(spec.oid or (), lookup)
        if found is None:
            return
        source, cell = found
        value = CONVERTERS[spec.convert](cell.value)
        if isinstance(value, float) and (source.scale != 1 or spec.scale != 1):
            value = value * source.scale * spec.scale
    attributes[name] = value
