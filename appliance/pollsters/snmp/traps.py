"""The SNMP trap receiver: v2c and v3 notifications from known targets -> index events.

pysnmp's notification receiver (``ntfrcv``) decodes and authenticates: a v2c trap must
carry a configured target's community, a v3 trap one of their users' keys under the
sender's engine ID (``engine_id`` on the target). What it lets through is then checked
against the sender's address: a trap from a host that is no configured target is counted
(``unknown_senders``) and dropped. Of the rest, ``linkDown``/``linkUp``/``coldStart``/
``warmStart`` and every trap a definition file declares (``traps:``) become
:class:`~appliance.index.events.Event` rows on the resource they concern: the interface
row whose columns the trap's varbinds carry (ifIndex.N -> ``snmp://target/if/N``), else
the device; other traps are counted (``undeclared``) and dropped.

The receiver only turns traps into events and hands them to ``emit``; the ``snmp-traps``
program (:mod:`appliance.snmp_programs`) writes them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config as pysnmp_config
from pysnmp.entity import engine as pysnmp_engine
from pysnmp.entity.rfc3413 import ntfrcv
from pysnmp.proto import rfc1902

from appliance.config import SnmpSettings, SnmpTarget
from appliance.model import Event, resource_id_for
from appliance.pollsters.snmp.converters import text
from appliance.pollsters.snmp.definitions import Group, Oid, TableSpec
from appliance.pollsters.snmp.metering import device_key, row_key
from appliance.pollsters.snmp.mibnames import MibNames
from appliance.pollsters.snmp.v3 import AUTH_PROTOCOLS, PRIV_PROTOCOLS, to_cell
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
    """What the receiver saw since it started (reported as its health detail)."""

    received: int = 0
    events: int = 0
    unknown_senders: int = 0
    undeclared: int = 0
    last_sender: str = ""


class TrapReceiver:
    """Accepts notifications for the configured targets; see the module docstring."""

    def __init__(
        self,
        settings: SnmpSettings,
        groups: dict[str, Group],
        mibs: MibNames,
        emit: Callable[[list[Event]], None],
    ):
        self._settings = settings
        self._mibs = mibs
        self._emit = emit
        self._tables = _table_columns(groups)
        self._declared = STANDARD_TRAPS | {oid for g in groups.values() for oid in g.spec.traps}
        self._senders: dict[str, list[SnmpTarget]] = {}  # by IPv4 address
        self._communities: dict[str, str] = {}  # pysnmp security name -> community
        self._users: set[str] = set()  # targets whose v3 user is registered
        self.counters = TrapCounters()
        self._engine: pysnmp_engine.SnmpEngine | None = None

    async def start(self, runtime: list[SnmpTarget] = ()) -> tuple[str, int]:
        """Bind the UDP port and register the targets' credentials; the address back."""
        engine = self._engine = pysnmp_engine.SnmpEngine()
        transport = udp.UdpTransport().open_server_mode(self._settings.traps.address())
        pysnmp_config.add_transport(engine, udp.DOMAIN_NAME, transport)
        self.update(list(runtime))
        ntfrcv.NotificationReceiver(engine, self._received)
        await asyncio.sleep(0)  # let the transport's endpoint come up
        return self._settings.traps.address()

    def update(self, runtime: list[SnmpTarget]) -> None:
        """Accept traps from the configured targets plus ``runtime`` ones (the index's, read
        again every health tick): senders are replaced, new credentials registered."""
        engine = self._engine
        assert engine is not None, "start() first"
        targets = [*self._settings.targets, *runtime]
        senders: dict[str, list[SnmpTarget]] = {}
        for target in targets:
            for address in _addresses(target.host):
                senders.setdefault(address, []).append(target)
        self._senders = senders
        known = set(self._communities.values())
        for target in targets:
            community = target.community.get_secret_value()
            if target.version == "2c" and community not in known:
                known.add(community)
                name = f"trap-community-{len(self._communities)}"
                self._communities[name] = community
                pysnmp_config.add_v1_system(engine, name, community)
            elif target.version == "3" and target.engine_id and target.name not in self._users:
                self._users.add(target.name)
                pysnmp_config.add_v3_user(
                    engine,
                    target.user,
                    AUTH_PROTOCOLS[target.auth_protocol],
                    target.auth_key.get_secret_value() if target.auth_key else None,
                    PRIV_PROTOCOLS[target.priv_protocol],
                    target.priv_key.get_secret_value() if target.priv_key else None,
                    securityEngineId=rfc1902.OctetString(
                        hexValue=target.engine_id.removeprefix("0x")
                    ),
                )

    def rejected_credentials(self) -> int:
        """Traps pysnmp refused before they reached us: unknown community, unknown v3 user,
        wrong digest, undecryptable, unknown engine ID, outside the time window (its own
        SNMPv2-MIB and USM statistics counters)."""
        if self._engine is None:
            return 0
        builder = self._engine.get_mib_builder()
        counters = [("__SNMPv2-MIB", "snmpInBadCommunityNames")] + [
            ("__SNMP-USER-BASED-SM-MIB", name)
            for name in ("usmStatsUnknownUserNames", "usmStatsWrongDigests",
                         "usmStatsDecryptionErrors", "usmStatsUnknownEngineIDs",
                         "usmStatsNotInTimeWindows")
        ]
        return sum(int(builder.import_symbols(mib, name)[0].syntax) for mib, name in counters)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close_dispatcher()

    def _received(
        self,
        engine: Any,
        _state: Any,
        _context_engine: Any,
        _context: Any,
        varbinds: list[tuple[Any, Any]],
        _cb: Any,
    ) -> None:
        context = engine.observer.get_execution_context("rfc3412.receiveMessage:request")
        sender = str(context["transportAddress"][0])
        self.counters.received += 1
        self.counters.last_sender = sender
        target = self._target_for(sender, context["securityModel"], str(context["securityName"]))
        if target is None:
            self.counters.unknown_senders += 1
            log.debug("snmp trap from unknown sender %s dropped", sender)
            return
        event = self.event(target, [(tuple(o), v) for o, v in varbinds], time.time())
        if event is None:
            self.counters.undeclared += 1
            return
        self.counters.events += 1
        self._emit([event])

    def _target_for(self, sender: str, model: int, security_name: str) -> SnmpTarget | None:
        """The target at ``sender`` whose credentials the trap carried (several targets may
        share a host: one per agent port, or v2c beside v3)."""
        for target in self._senders.get(sender, ()):
            if model == 3:
                if target.version == "3" and target.user == security_name:
                    return target
            elif target.version == "2c" and (
                target.community.get_secret_value() == self._communities.get(security_name)
            ):
                return target
        return None

    def event(
        self, target: SnmpTarget, varbinds: list[tuple[Oid, Any]], now: float
    ) -> Event | None:
        """The event a notification's varbinds make, or None for an undeclared trap."""
        values = {oid: to_cell(value) for oid, value in varbinds}
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
