"""Talking to one SNMP agent: GET of scalars and multi-column GETBULK table walks.

This module knows the protocol and nothing about meters. v2c requests go through the
pollster's own codec and socket (:mod:`.v2c`, a quarter of pysnmp's CPU); v3 requests go
through pysnmp 7 (asyncio), whose typed values become plain Python (:class:`Cell`). A
:class:`Session` counts request PDUs and adapts max-repetitions when an agent answers
``tooBig`` or stops answering large requests.

Errors are raised as :class:`SnmpError` with a message that names the failure and never
the community or the v3 keys (they can appear in nothing but the request itself).
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from pyasn1.type import univ
from pysnmp.entity.rfc3413 import cmdgen
from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch.asyncio import SnmpEngine, UdpTransportTarget, UsmUserData
from pysnmp.hlapi.v3arch.asyncio import auth as usm
from pysnmp.hlapi.v3arch.asyncio.cmdgen import LCD
from pysnmp.proto import errind, rfc1902
from pysnmp.proto.error import StatusInformation

from appliance.config import SnmpTarget
from appliance.pollsters.snmp import v2c
from appliance.pollsters.snmp.definitions import Oid
from appliance.pollsters.snmp.v2c import Cell

# A broken agent that never leaves a table must not keep us walking until the deadline.
MAX_PDUS_PER_WALK = 10_000
# Varbinds per GET request: a few dozen scalars fit every agent's message size.
GET_CHUNK = 32
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


class SnmpError(Exception):
    """A failed request, described without secrets."""


class Timeout(SnmpError):
    """No answer within the target's timeout and retries."""


@dataclass
class Stats:
    """What a session did, for the target's health report."""

    pdus: int = 0
    backoffs: int = 0
    answered: bool = False  # the agent answered at least one request of this poll


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


class Answer(NamedTuple):
    """A response PDU: error-status (0: none), error-index and the varbinds."""

    status: int
    index: int
    varbinds: list[tuple[Oid, Cell | None]]


class Requester(Protocol):
    """Sends one request PDU to one target: a GET (``repetitions`` None) or a GETBULK."""

    async def __call__(self, repetitions: int | None, oids: list[Oid]) -> Answer: ...


class V2cRequester:
    """v2c requests through the pollster's shared :class:`v2c.Client`."""

    def __init__(self, client: v2c.Client, address: tuple[str, int], target: SnmpTarget):
        self._client = client
        self._address = address
        self._target = target
        self._community = target.community.get_secret_value().encode()

    async def __call__(self, repetitions: int | None, oids: list[Oid]) -> Answer:
        pdu = v2c.GET if repetitions is None else v2c.GETBULK
        target = self._target
        try:
            response = await self._client.request(
                self._address,
                self._community,
                pdu,
                oids,
                repetitions or 0,
                target.timeout,
                target.retries,
            )
        except v2c.RequestTimeout:
            raise _timeout(target) from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise SnmpError(f"cannot send a request: {reason}") from None
        return Answer(response.error_status, response.error_index, response.varbinds)


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


class Connections:
    """The ways out to agents, kept for a pollster's (or a sweep's) lifetime: one UDP socket
    for every v2c target and one pysnmp engine per distinct v3 credential set."""

    def __init__(self) -> None:
        self._v2c = v2c.Client()
        self._engines: dict[tuple[str, ...], SnmpEngine] = {}

    async def open(self) -> None:
        """Bind the v2c socket (before requests run concurrently)."""
        await self._v2c.open()

    async def requester(self, target: SnmpTarget) -> Requester:
        """A requester for ``target``, its address resolved now (once)."""
        try:
            if target.version == "2c":
                found = await asyncio.get_running_loop().getaddrinfo(
                    target.host, target.port, family=socket.AF_INET, type=socket.SOCK_DGRAM
                )
                return V2cRequester(self._v2c, found[0][4][:2], target)
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
        self._v2c.close()


class Session:
    """Requests to one target within one poll; ``max_repetitions`` may shrink on the way."""

    def __init__(self, send: Requester, max_repetitions: int):
        self._send = send
        self.max_repetitions = max_repetitions
        self.stats = Stats()

    async def get(self, oids: list[Oid]) -> dict[Oid, Cell]:
        """GET scalars (instance OIDs); absent ones are missing from the result."""
        out: dict[Oid, Cell] = {}
        for start in range(0, len(oids), GET_CHUNK):
            for oid, cell in await self._request(None, oids[start : start + GET_CHUNK]):
                if cell is not None:
                    out[oid] = cell
        return out

    async def walk(
        self, columns: list[Oid], expected_rows: int | None = None
    ) -> dict[Oid, dict[Oid, Cell]]:
        """Walk several columns of one table together with GETBULK.

        Returns ``{column: {row index: cell}}``. One request carries every column still in
        the table, so a walk costs ceil(rows / max_repetitions) + 1 PDUs when the agent
        fills its responses. A column leaves the request once the agent answers beyond it.
        ``expected_rows`` (the table's size last time) trims the first request to one
        repetition past the table's end, instead of up to max-repetitions of rows beyond
        it that would be decoded and thrown away.
        """
        rows: dict[Oid, dict[Oid, Cell]] = {c: {} for c in columns}
        cursor = dict.fromkeys(columns)  # column -> last OID read (None: not started)
        pdus = 0
        while cursor:
            asked = list(cursor)
            first = pdus == 0 and expected_rows is not None
            varbinds = await self._bulk(
                [cursor[c] or c for c in asked], expected_rows + 1 if first else None
            )
            pdus += 1
            if not varbinds:
                raise SnmpError(f"agent sent an empty GETBULK response in {_dotted(asked[0])}")
            if pdus > MAX_PDUS_PER_WALK:
                raise SnmpError(f"walk of {_dotted(asked[0])} exceeded {MAX_PDUS_PER_WALK} PDUs")
            done: set[Oid] = set()
            width = len(asked)
            for i, (oid, cell) in enumerate(varbinds):
                column = asked[i % width]
                if column in done:
                    continue
                if cell is None or oid[: len(column)] != column:
                    done.add(column)
                    continue
                last = cursor[column]
                if last is not None and oid <= last:
                    raise SnmpError(f"agent returned OIDs out of order in {_dotted(column)}")
                rows[column][oid[len(column) :]] = cell
                cursor[column] = oid
            for column in done:
                del cursor[column]
        return rows

    async def _bulk(self, start: list[Oid], limit: int | None) -> list[tuple[Oid, Cell | None]]:
        """One GETBULK of at most ``limit`` repetitions; on tooBig or a timeout after the
        agent has answered, halve max-repetitions and retry (the pollster keeps the value
        that worked)."""
        while True:
            try:
                repetitions = min(self.max_repetitions, limit or self.max_repetitions)
                return await self._request(repetitions, start)
            except (_TooBig, Timeout):
                if self.max_repetitions == 1 or not self.stats.answered:
                    raise
                self.max_repetitions = max(1, self.max_repetitions // 2)
                self.stats.backoffs += 1

    async def _request(
        self, repetitions: int | None, oids: list[Oid]
    ) -> list[tuple[Oid, Cell | None]]:
        """One request PDU: a GET, or a GETBULK with ``repetitions``; its varbinds back."""
        self.stats.pdus += 1
        answer = await self._send(repetitions, oids)
        if answer.status == v2c.TOO_BIG:
            raise _TooBig("agent answered tooBig")
        if answer.status:
            name = (
                v2c.ERROR_NAMES[answer.status]
                if answer.status < len(v2c.ERROR_NAMES)
                else f"error-status {answer.status}"
            )
            raise SnmpError(f"agent answered {name} at varbind {answer.index}")
        self.stats.answered = True
        return answer.varbinds


class _TooBig(SnmpError):
    """The response would not fit the agent's message size."""


def _timeout(target: SnmpTarget) -> Timeout:
    who = "community" if target.version == "2c" else "v3 credentials"
    return Timeout(
        f"no response from {target.host}:{target.port} within {target.timeout:g}s "
        f"x {target.retries + 1} tries (agent down, port closed, or wrong {who})"
    )


def _describe(indication: Any, target: SnmpTarget) -> SnmpError:
    """A clear, secret-free error for a pysnmp error indication."""
    if isinstance(indication, errind.RequestTimedOut):
        return _timeout(target)
    for kind, hint in _V3_HINTS.items():
        if isinstance(indication, kind):
            return SnmpError(hint)
    return SnmpError(f"SNMP error: {type(indication).__name__}")


def _dotted(oid: Oid) -> str:
    return ".".join(map(str, oid))
