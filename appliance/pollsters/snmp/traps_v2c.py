"""The v2c trap receiver: SNMPv2-Trap messages read by :mod:`.v2c`'s codec, no pysnmp.

Why not pysnmp's notification receiver: importing it costs the ``workers`` parent about
31 MB and its engine another 18 MB in the running receiver, for what is, in v2c, a
community compared and a varbind list decoded. So this one runs whenever no target is v3
(:func:`.traps.needs_pysnmp`); the receiver's runner (:mod:`appliance.snmp_programs`)
leaves it for pysnmp's when a v3 target appears.

A datagram is checked as pysnmp checked it: a community no v2c target has is rejected
(``rejected_credentials()``, as pysnmp's snmpInBadCommunityNames), and so is a v3 message,
there being no v3 user to check it against; a trap with a known community goes to
:class:`~.traps.TrapHandler`, which matches it to the target at the sender's address.
SNMPv1 traps and informs (answering one is not implemented) are counted as
``unsupported``, datagrams that do not decode as ``malformed``; all are dropped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from appliance.config import SnmpTarget
from appliance.pollsters.snmp import v2c
from appliance.pollsters.snmp.traps import TrapHandler, by_community

log = logging.getLogger(__name__)


class V2cTrapReceiver(asyncio.DatagramProtocol):
    """One UDP socket on ``traps.listen``; see the module docstring."""

    def __init__(self, handler: TrapHandler):
        self._handler = handler
        self.counters = handler.counters
        self._communities: frozenset[bytes] = frozenset()
        self._rejected = 0
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self, runtime: list[SnmpTarget]) -> tuple[str, int]:
        """Learn the targets, then bind the UDP port; the address bound back."""
        self.update(runtime)
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(
            lambda: self, local_addr=self._handler.settings.traps.address()
        )
        assert self._transport is not None
        host, port = self._transport.get_extra_info("sockname")[:2]
        return host, port

    def update(self, runtime: list[SnmpTarget]) -> None:
        """Accept the configured targets' and ``runtime`` ones' communities from now on."""
        targets = self._handler.update(runtime)
        self._communities = frozenset(
            t.community.get_secret_value().encode() for t in targets if t.version == "2c"
        )

    def rejected_credentials(self) -> int:
        """Datagrams refused for their credentials: an unknown community, or v3."""
        return self._rejected

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        sender = addr[0]
        try:
            message = v2c.decode_trap(data)
        except v2c.UnexpectedMessage as exc:
            if exc.version == v2c.VERSION_3:
                self._rejected += 1
            else:
                self.counters.unsupported += 1
            log.debug("snmp traps: %s from %s dropped", exc, sender)
            return
        except v2c.DecodeError as exc:
            self.counters.malformed += 1
            log.debug("snmp traps: undecodable datagram from %s dropped (%s)", sender, exc)
            return
        if message.community not in self._communities:
            self._rejected += 1
            return
        self._handler.handle(sender, by_community(message.community), message.varbinds)
