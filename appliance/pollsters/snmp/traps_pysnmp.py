"""The trap receiver on pysnmp's notification receiver: run only when a target is v3.

v3 traps need USM (keys localised to the sender's engine ID, digests, decryption, time
windows), which pysnmp has and :mod:`.v2c` does not; pysnmp then takes the v2c targets'
traps too, on the same port. What it authenticates goes to
:class:`~.traps.TrapHandler`, as the v2c receiver's does. Imported only by the
receiver's process (the SNMP agent's, or ``snmp-traps``) when a v3 target exists (and by
the ``workers`` parent when one is configured), because pysnmp costs about 31 MB to import
and its engine 18 MB to run.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config as pysnmp_config
from pysnmp.entity import engine as pysnmp_engine
from pysnmp.entity.rfc3413 import ntfrcv
from pysnmp.proto import rfc1902
from pysnmp.proto.api import v2c as pdus

from appliance.config import SnmpTarget
from appliance.pollsters.snmp.traps import TrapCounters, TrapHandler, by_community, by_user
from appliance.pollsters.snmp.v3 import AUTH_PROTOCOLS, PRIV_PROTOCOLS, to_cell

_V1 = 0  # messageProcessingModel of an SNMPv1 message
# pysnmp's own statistics (its MIB instrumentation) of traps refused for their credentials.
_REJECTED = [("__SNMPv2-MIB", "snmpInBadCommunityNames")] + [
    ("__SNMP-USER-BASED-SM-MIB", name)
    for name in ("usmStatsUnknownUserNames", "usmStatsWrongDigests", "usmStatsDecryptionErrors",
                 "usmStatsUnknownEngineIDs", "usmStatsNotInTimeWindows")
]


class PysnmpTrapReceiver:
    """pysnmp's engine on ``traps.listen`` with every target's credentials registered."""

    def __init__(self, handler: TrapHandler):
        self._handler = handler
        self._communities: dict[str, str] = {}  # pysnmp security name -> community
        self._users: set[str] = set()  # targets whose v3 user is registered
        self._engine: pysnmp_engine.SnmpEngine | None = None

    @property
    def counters(self) -> TrapCounters:
        """The handler's counters, ``malformed`` read from pysnmp (which drops those)."""
        counters = self._handler.counters
        counters.malformed = self._statistic("__SNMPv2-MIB", "snmpInASNParseErrs")
        return counters

    async def start(self, runtime: list[SnmpTarget]) -> tuple[str, int]:
        """Bind the UDP port and register the targets' credentials; the address back."""
        engine = self._engine = pysnmp_engine.SnmpEngine()
        address = self._handler.settings.traps.address()
        transport = udp.UdpTransport().open_server_mode(address)
        pysnmp_config.add_transport(engine, udp.DOMAIN_NAME, transport)
        self.update(runtime)
        ntfrcv.NotificationReceiver(engine, self._received)
        await asyncio.sleep(0)  # let the transport's endpoint come up
        return address

    def update(self, runtime: list[SnmpTarget]) -> None:
        """Accept the configured and ``runtime`` targets: new credentials are registered
        (pysnmp has no removal; a target removed stays unmatched by its address)."""
        engine = self._engine
        assert engine is not None, "start() first"
        known = set(self._communities.values())
        for target in self._handler.update(runtime):
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
        wrong digest, undecryptable, unknown engine ID, outside the time window."""
        return sum(self._statistic(mib, name) for mib, name in _REJECTED)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close_dispatcher()

    def _statistic(self, mib: str, name: str) -> int:
        if self._engine is None:
            return 0
        builder = self._engine.get_mib_builder()
        return int(builder.import_symbols(mib, name)[0].syntax)

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
        # pysnmp also takes SNMPv1 traps (converted per RFC 2576) and informs (answered
        # before we see them); the v2c receiver cannot, so neither does this one: which
        # receiver runs must not change what is accepted.
        if (context["messageProcessingModel"] == _V1
                or context["pdu"].tagSet == pdus.InformRequestPDU.tagSet):
            self._handler.counters.unsupported += 1
            return
        name = str(context["securityName"])
        carries = (by_user(name) if context["securityModel"] == 3
                   else by_community(self._communities.get(name, "").encode()))
        self._handler.handle(sender, carries, [(tuple(o), to_cell(v)) for o, v in varbinds])
