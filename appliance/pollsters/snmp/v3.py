"""SNMPv3 requests, and pysnmp values as plain cells: everything that needs pysnmp.

Imported only when a v3 target appears (or by the trap receiver): a v2c-only appliance
never loads pysnmp into its SNMP agent (about 20 MB of RSS measured, pysnmp plus pyasn1 and
its MIB modules). v2c requests go through :mod:`.v2c`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pyasn1.type import univ
from pysnmp.entity.rfc3413 import cmdgen
from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch.asyncio import SnmpEngine, UdpTransportTarget, UsmUserData
from pysnmp.hlapi.v3arch.asyncio import auth as usm
from pysnmp.hlapi.v3arch.asyncio.cmdgen import LCD
from pysnmp.proto import errind, rfc1902
from pysnmp.proto.error import StatusInformation

from appliance.config import SnmpTarget
from appliance.pollsters.snmp.answers import Answer, SnmpError, timeout_error
from appliance.pollsters.snmp.definitions import Oid
from appliance.pollsters.snmp.v2c import Cell

_GET = cmdgen.GetCommandGenerator()
_BULK = cmdgen.BulkCommandGeneratorSingleRun()
_NULL = rfc1902.Null("")

AUTH_PROTOCOLS = {
    "none": usm.USM_AUTH_NONE,
    "MD5": usm.USM_AUTH_HMAC96_MD5,
    "SHA": usm.USM_AUTH_HMAC96_SHA,
    "SHA224": usm.USM_AUTH_HMAC128_SHA224,
    "SHA256": usm.USM_AUTH_HMAC192_SHA256,
    "SHA384": usm.USM_AUTH_HMAC256_SHA384,
    "SHA512": usm.USM_AUTH_HMAC384_SHA512,
}
PRIV_PROTOCOLS = {
    "none": usm.USM_PRIV_NONE,
    "DES": usm.USM_PRIV_CBC56_DES,
    "AES": usm.USM_PRIV_CFB128_AES,
    "AES128": usm.USM_PRIV_CFB128_AES,
    "AES192": usm.USM_PRIV_CFB192_AES,
    "AES256": usm.USM_PRIV_CFB256_AES,
}
_COUNTER_BITS = {rfc1902.Counter32: 32, rfc1902.Counter64: 64}
# Reasons pysnmp gives for a v3 request the agent rejected; said plainly.
_V3_HINTS = {
    errind.UnknownUserName: "unknown v3 user",
    errind.WrongDigest: "wrong v3 auth key or protocol (digest mismatch)",
    errind.DecryptionError: "wrong v3 priv key or protocol (decryption failed)",
    errind.UnsupportedSecurityLevel: "the agent does not allow this v3 security level",
    errind.NotInTimeWindow: "v3 message outside the agent's time window",
}


def to_cell(value: Any) -> Cell | None:
    """pysnmp value -> :class:`Cell`; ``None`` for noSuchObject/noSuchInstance/endOfMibView."""
    bits = _COUNTER_BITS.get(type(value))
    if bits is not None:
        return Cell(int(value), bits)
    if isinstance(value, univ.Null):  # noSuchObject, noSuchInstance, endOfMibView
        return None  # (checked first: pyasn1's Null is an OctetString)
    if isinstance(value, univ.Integer):  # Integer32, Gauge32, TimeTicks, Unsigned32
        return Cell(int(value), 0)
    if isinstance(value, rfc1902.IpAddress):
        return Cell(".".join(str(b) for b in value.asOctets()), 0)
    if isinstance(value, univ.OctetString):  # also Opaque
        return Cell(value.asOctets(), 0)
    if isinstance(value, univ.ObjectIdentifier):
        return Cell(".".join(str(p) for p in value), 0)
    return None  # a type no definition can use


def auth_data(target: SnmpTarget) -> UsmUserData:
    """pysnmp credentials for a v3 target (secrets leave their ``SecretStr`` only here and
    in the pollster's engine key)."""
    return UsmUserData(
        target.user,
        authKey=target.auth_key.get_secret_value() if target.auth_key else None,
        privKey=target.priv_key.get_secret_value() if target.priv_key else None,
        authProtocol=AUTH_PROTOCOLS[target.auth_protocol],
        privProtocol=PRIV_PROTOCOLS[target.priv_protocol],
    )


class PysnmpRequester:
    """v3 requests through pysnmp's engine (USM, engine discovery, time windows).

    pysnmp's high-level get_cmd/bulk_cmd resolve every request OID through its MIB view (a
    sixth of a poll's CPU, for numeric OIDs that need no resolving): requests go to the
    command generators directly, with the same local configuration the high-level API makes.
    """

    def __init__(self, engine: SnmpEngine, target: SnmpTarget, transport: UdpTransportTarget):
        self._engine = engine
        self._target = target
        self._transport = transport
        self._auth = auth_data(target)
        self._context = target.context
        self._target_name: str | None = None  # pysnmp's name for the configured target

    async def __call__(self, repetitions: int | None, oids: list[Oid]) -> Answer:
        context = self._context
        if self._target_name is None:
            self._target_name, _ = LCD.configure(self._engine, self._auth, self._transport, context)
        future: asyncio.Future[tuple[Any, Any, Any, Any]] = (
            asyncio.get_running_loop().create_future()
        )

        def done(
            _e: Any, _h: Any, indication: Any, status: Any, index: Any, vbs: Any, _c: Any
        ) -> None:
            if not future.done():  # a poll cut off at its deadline cancelled it
                future.set_result((indication, status, index, vbs))

        varbinds = [(oid, _NULL) for oid in oids]
        try:
            if repetitions is None:
                _GET.send_varbinds(self._engine, self._target_name, None, context, varbinds, done)
            else:
                _BULK.send_varbinds(
                    self._engine, self._target_name, None, context, 0, repetitions, varbinds, done
                )
        except StatusInformation as exc:
            raise _describe(exc.get("errorIndication"), self._target) from None
        except PySnmpError as exc:
            raise SnmpError(f"cannot send a request: {type(exc).__name__}") from None
        indication, status, index, varbinds = await future
        if indication:
            raise _describe(indication, self._target)
        return Answer(
            int(status or 0),
            int(index or 0),
            [(tuple(name), to_cell(value)) for name, value in varbinds],
        )


class Engines:
    """One pysnmp engine per distinct v3 credential set, for a pollster's lifetime."""

    def __init__(self) -> None:
        self._engines: dict[tuple[str, ...], SnmpEngine] = {}

    async def requester(self, target: SnmpTarget) -> PysnmpRequester:
        try:
            transport = await UdpTransportTarget.create(
                (target.host, target.port), timeout=target.timeout, retries=target.retries
            )
        except (PySnmpError, OSError):
            raise SnmpError(f"cannot resolve {target.host}:{target.port}") from None
        return PysnmpRequester(self._engine_for(target), target, transport)

    def _engine_for(self, target: SnmpTarget) -> SnmpEngine:
        """One SNMP engine per distinct v3 credential set.

        pysnmp keeps v3 users in its engine keyed by user name: two targets with the same
        user name but other keys (or a wrong key) must not overwrite each other's entry.
        The key tuple holds secrets and lives only in this dict.
        """
        key = (
            target.user or "",
            target.auth_protocol,
            target.auth_key.get_secret_value() if target.auth_key else "",
            target.priv_protocol,
            target.priv_key.get_secret_value() if target.priv_key else "",
        )
        engine = self._engines.get(key)
        if engine is None:
            engine = self._engines[key] = SnmpEngine()
        return engine

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close_dispatcher()


def _describe(indication: Any, target: SnmpTarget) -> SnmpError:
    """A clear, secret-free error for a pysnmp error indication."""
    if isinstance(indication, errind.RequestTimedOut):
        return timeout_error(target)
    for kind, hint in _V3_HINTS.items():
        if isinstance(indication, kind):
            return SnmpError(hint)
    return SnmpError(f"SNMP error: {type(indication).__name__}")
