"""The SNMP trap receivers' common part: known targets' traps -> index events, no pysnmp.

Two receivers authenticate and decode, and hand what they let through to
:class:`TrapHandler`:

- :mod:`.traps_v2c` (no pysnmp) when every target is v2c: its own BER codec on a UDP
  socket; a trap must carry a v2c target's community;
- :mod:`.traps_pysnmp` when any target is v3 (USM keys, the sender's engine ID, time
  windows): pysnmp's notification receiver, for the v2c targets' traps too.

Importing pysnmp costs about 31 MB in the ``workers`` parent and its running engine about
18 MB more (MIB modules loaded at run time), so :func:`needs_pysnmp` decides, and this
module imports nothing of pysnmp.

What a receiver lets through is checked against the sender's address: a trap from a host
that is no configured target is counted (``unknown_senders``) and dropped. Of the rest,
``linkDown``/``linkUp``/``coldStart``/``warmStart`` and every trap a definition file declares
(``traps:``) become :class:`~appliance.model.Event` rows on the resource they concern: the
interface row whose columns the trap's varbinds carry (ifIndex.N -> ``snmp://target/if/N``),
else the device; other traps are counted (``undeclared``) and dropped. SNMPv1 traps and
informs are neither (counted as ``unsupported``).

The receivers only turn traps into events and hand them to ``emit``; their runner
(:mod:`appliance.snmp_programs`, on a thread of the SNMP agent's process or as the
``snmp-traps`` program) writes them.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from appliance.config import SnmpSettings, SnmpTarget
from appliance.model import Event, resource_id_for
from appliance.pollsters.snmp.converters import text
from appliance.pollsters.snmp.definitions import Group, Oid, TableSpec
from appliance.pollsters.snmp.metering import device_key, row_key
from appliance.pollsters.snmp.mibnames import MibNames
from appliance.pollsters.snmp.v2c import Cell
from appliance.pollsters.snmp.walkplan import SYS_UPTIME

log = logging.getLogger(__name__)

SOURCE = "snmp-traps"
SNMP_TRAP_OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
# RFC 3418 / RFC 2863 generic traps: always accepted.
STANDARD_TRAPS = {
    (1, 3, 6, 1, 6, 3, 1, 1, 5, 1),  # coldStart
    (1, 3, 6, 1, 6, 3, 1, 1, 5, 2),  # warmStart
    (1, 3, 6, 1, 6, 3, 1, 1, 5, 3),  # linkDown
    (1, 3, 6, 1, 6, 3, 1, 1, 5, 4),  # linkUp
}


@dataclass
class TrapCounters:
    """What the receiver saw since it started (reported as its health detail).

    ``received`` counts the traps that passed the credential check (the others are the
    receiver's ``rejected_credentials()``); ``unsupported`` the well-formed messages that
    are no SNMPv2-Trap (v1 traps, informs); ``malformed`` the datagrams that are no SNMP
    message at all (the pysnmp receiver: its snmpInASNParseErrs).
    """

    received: int = 0
    events: int = 0
    unknown_senders: int = 0
    undeclared: int = 0
    unsupported: int = 0
    malformed: int = 0
    last_sender: str = ""


class Receiver(Protocol):
    """What the receiver's runner drives: either receiver."""

    counters: TrapCounters

    async def start(self, runtime: list[SnmpTarget]) -> tuple[str, int]: ...
    def update(self, runtime: list[SnmpTarget]) -> None: ...
    def rejected_credentials(self) -> int: ...
    def close(self) -> None: ...


def needs_pysnmp(targets: Iterable[SnmpTarget]) -> bool:
    """Whether a v3 target is among ``targets``: only then is pysnmp's receiver needed."""
    return any(target.version == "3" for target in targets)


def by_community(community: bytes) -> Callable[[SnmpTarget], bool]:
    """Matches the v2c targets whose community a trap carried."""
    return lambda t: t.version == "2c" and t.community.get_secret_value().encode() == community


def by_user(user: str) -> Callable[[SnmpTarget], bool]:
    """Matches the v3 targets whose user a trap was authenticated as."""
    return lambda t: t.version == "3" and t.user == user


class TrapHandler:
    """Sender matching, counting and event building: everything after authentication,
    shared by both receivers."""

    def __init__(
        self,
        settings: SnmpSettings,
        groups: dict[str, Group],
        mibs: MibNames,
        emit: Callable[[list[Event]], None],
    ):
        self.settings = settings
        self._mibs = mibs
        self._emit = emit
        self._tables = _table_columns(groups)
        self._declared = STANDARD_TRAPS | {oid for g in groups.values() for oid in g.spec.traps}
        self._senders: dict[str, list[SnmpTarget]] = {}  # by IPv4 address
        self.counters = TrapCounters()

    def update(self, runtime: list[SnmpTarget]) -> list[SnmpTarget]:
        """Accept traps from the configured targets plus ``runtime`` ones (the index's, read
        again every health tick); every target back, for the receiver's credentials."""
        targets = [*self.settings.targets, *runtime]
        senders: dict[str, list[SnmpTarget]] = {}
        for target in targets:
            for address in _addresses(target.host):
                senders.setdefault(address, []).append(target)
        self._senders = senders
        return targets

    def handle(
        self,
        sender: str,
        carries: Callable[[SnmpTarget], bool],
        varbinds: list[tuple[Oid, Cell | None]],
    ) -> None:
        """One authenticated trap from ``sender``: an event for the target at that address
        whose credentials it ``carries`` (several targets may share a host: one per agent
        port, or v2c beside v3), else counted and dropped."""
        self.counters.received += 1
        self.counters.last_sender = sender
        target = next((t for t in self._senders.get(sender, ()) if carries(t)), None)
        if target is None:
            self.counters.unknown_senders += 1
            log.debug("snmp trap from unknown sender %s dropped", sender)
            return
        event = self.event(target, varbinds, time.time())
        if event is None:
            self.counters.undeclared += 1
            return
        self.counters.events += 1
        self._emit([event])

    def event(
        self, target: SnmpTarget, varbinds: list[tuple[Oid, Cell | None]], now: float
    ) -> Event | None:
        """The event a notification's varbinds make, or None for an undeclared trap."""
        values = dict(varbinds)
        trap = values.get(SNMP_TRAP_OID)
        if trap is None or not isinstance(trap.value, str):
            return None
        trap_oid = tuple(int(p) for p in trap.value.split("."))
        if trap_oid not in self._declared:
            return None
        name = self._mibs.name_of(trap_oid) or trap.value
        traits: dict[str, Any] = {"trap": name, "target": target.name}
        row: str | None = None  # the first varbind that is a table column's instance wins
        for oid, cell in values.items():
            if oid in (SYS_UPTIME, SNMP_TRAP_OID) or cell is None:
                continue
            value = cell.value
            traits[self._label(oid)] = value if isinstance(value, int) else text(value)
            row = row or self._row(target, oid)
        resource_id = row or resource_id_for(device_key(target))
        return Event(now, f"snmp.trap.{name.rpartition('::')[2]}", resource_id, SOURCE, traits)

    def _label(self, oid: Oid) -> str:
        """``IF-MIB::ifOperStatus.3`` for a column instance, else the dotted OID."""
        for cut in range(len(oid), 1, -1):
            name = self._mibs.name_of(oid[:cut])
            if name is not None:
                suffix = oid[cut:]
                return name + ("." + ".".join(map(str, suffix)) if suffix else "")
        return ".".join(map(str, oid))

    def _row(self, target: SnmpTarget, oid: Oid) -> str | None:
        """The id of the table-row resource whose column ``oid`` is an instance of."""
        for column, table in self._tables.items():
            if oid[: len(column)] == column and len(oid) > len(column):
                return resource_id_for(row_key(target, table, oid[len(column) :]))
        return None


def _table_columns(groups: dict[str, Group]) -> dict[Oid, TableSpec]:
    """Every column a definition table reads -> that table (longest columns first)."""
    out: dict[Oid, TableSpec] = {}
    for group in groups.values():
        for table in group.spec.tables:
            specs = [*table.meters, *table.attributes.values()]
            for oid in (o for spec in specs for o in spec.oids()):
                out.setdefault(oid, table)
    return dict(sorted(out.items(), key=lambda item: -len(item[0])))


def _addresses(host: str) -> set[str]:
    """The IPv4 addresses a target's host name stands for (its traps come from one)."""
    try:
        found = socket.getaddrinfo(host, None, family=socket.AF_INET, type=socket.SOCK_DGRAM)
    except OSError:
        log.warning("snmp traps: cannot resolve target host %s", host)
        return set()
    return {str(info[4][0]) for info in found}
