"""What to request from a device: its scalars, and the columns of each table to walk.

Decoding responses is most of a poll's CPU, so steady polls leave out two kinds of column:

- fallback columns the device has shown it does not need: when a value's preferred source
  (ifHCInOctets) answered for every row, its fallbacks (ifInOctets) are not walked;
- columns only attributes read (ifDescr, ifAlias, ifPhysAddress): attributes change
  rarely, so they are walked in full polls, and read with one GET for rows that appear in
  between; the other polls reuse the last values.

Every :data:`FULL_WALK_EVERY` polls everything is walked again: an attribute change shows
within that many polls, and a new row that lacks a preferred column gets its fallback.
Targets take their full walks in different cycles (see :func:`is_full_walk`), so no cycle
costs much more than another.
"""

from __future__ import annotations

import zlib

from appliance.pollsters.snmp.client import Cell
from appliance.pollsters.snmp.definitions import Group, Oid, ValueSpec

FULL_WALK_EVERY = 10
SYS_DESCR: Oid = (1, 3, 6, 1, 2, 1, 1, 1, 0)
SYS_OBJECT_ID: Oid = (1, 3, 6, 1, 2, 1, 1, 2, 0)
SYS_UPTIME: Oid = (1, 3, 6, 1, 2, 1, 1, 3, 0)


def is_full_walk(target_name: str, polls: int) -> bool:
    """Whether a target's poll number ``polls`` (from 0) walks every column: its first
    one, then every :data:`FULL_WALK_EVERY`-th, offset by a stable hash of its name."""
    offset = zlib.crc32(target_name.encode())
    return polls == 0 or (polls + offset) % FULL_WALK_EVERY == 0


def scalar_oids(groups: list[Group]) -> list[Oid]:
    """The system OIDs the engine needs, then every scalar the groups may read."""
    oids = [SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME]
    for group in groups:
        device = group.spec.device
        for spec in [*device.attributes.values(), *device.meters]:
            oids.extend(spec.oids())
    return list(dict.fromkeys(oids))


def table_columns(groups: list[Group], skip: frozenset[Oid] = frozenset()) -> dict[Oid, list[Oid]]:
    """Columns to walk, by table entry OID: one walk per table serves every meter of it."""
    tables: dict[Oid, set[Oid]] = {}
    for group in groups:
        for table in group.spec.tables:
            for spec in [*table.attributes.values(), *table.meters]:
                for column in spec.oids():
                    if column not in skip:
                        tables.setdefault(column[:-1], set()).add(column)
    return {entry: sorted(columns) for entry, columns in sorted(tables.items())}


def unneeded_fallbacks(groups: list[Group], tables: dict[Oid, dict[Oid, Cell]]) -> frozenset[Oid]:
    """Fallback columns no row of this reading needed (their preferred column was there)."""
    needed: set[Oid] = set()
    spare: set[Oid] = set()
    for group in groups:
        for table in group.spec.tables:
            rows: set[Oid] = set()  # every row the table's meters saw
            for meter in table.meters:
                for oid in meter.oids():
                    rows.update(tables.get(oid, {}))
            for spec in [*table.attributes.values(), *table.meters]:
                sources = [s.oid for s in spec.oid or ()]
                if not sources:
                    continue
                needed.add(sources[0])
                if isinstance(spec, ValueSpec) and spec.combine is not None:
                    needed.update(s.oid for s in spec.combine.oid)
                primary = tables.get(sources[0], {})
                if rows and all(index in primary for index in rows):
                    spare.update(sources[1:])
                else:
                    needed.update(sources[1:])
    return frozenset(spare - needed)


def attribute_only_columns(groups: list[Group]) -> frozenset[Oid]:
    """Table columns read by attributes and by no meter."""
    attributes: set[Oid] = set()
    meters: set[Oid] = set()
    for group in groups:
        for table in group.spec.tables:
            for spec in table.attributes.values():
                attributes.update(spec.oids())
            for meter in table.meters:
                meters.update(meter.oids())
    return frozenset(attributes - meters)
