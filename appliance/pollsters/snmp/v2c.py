"""SNMPv2c without pyasn1 objects: a minimal BER codec, and one UDP socket for GET/GETBULK.

Why this exists beside pysnmp: profiling a steady poll of 50 devices x 20 interfaces put
three quarters of the pollster's CPU in pyasn1's generic BER decoder building an object
per varbind value (benchmarks/README.md, 2026-11-29). A v2c response has a fixed shape
(message, community, response PDU, varbind list) and a dozen value types, so this module
decodes it straight into :class:`Cell` tuples. An SNMPv2-Trap has the same shape, so the
trap receiver reads v2c traps with it too (:mod:`.traps_v2c`). pysnmp still does v3 (USM
keys, engine discovery, time windows), for requests and for traps.

The codec is tested against pyasn1/pysnmp encodings of the same messages
(tests/test_snmp_v2c.py), and answers from agents are matched on sender address, request
id and community, as pysnmp's dispatcher matches them.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import NamedTuple, cast

from appliance.pollsters.snmp.converters import Raw

Oid = tuple[int, ...]

GET = 0xA0
GETBULK = 0xA5
RESPONSE = 0xA2
INFORM = 0xA6
TRAP = 0xA7  # SNMPv2-Trap-PDU
VERSION_1, VERSION_2C, VERSION_3 = 0, 1, 3  # the message's version field
# RFC 3416 error-status values, named as pysnmp and net-snmp name them.
ERROR_NAMES = (
    *("noError", "tooBig", "noSuchName", "badValue", "readOnly", "genErr", "noAccess"),
    *("wrongType", "wrongLength", "wrongEncoding", "wrongValue", "noCreation"),
    *("inconsistentValue", "resourceUnavailable", "commitFailed", "undoFailed"),
    *("authorizationError", "notWritable", "inconsistentName"),
)
TOO_BIG = 1

_INTEGER, _OCTETS, _NULL, _OID, _SEQUENCE = 0x02, 0x04, 0x05, 0x06, 0x30
_IPADDRESS, _COUNTER32, _OPAQUE, _COUNTER64 = 0x40, 0x41, 0x44, 0x46
_UNSIGNED = frozenset({0x42, 0x43, 0x47})  # Gauge32/Unsigned32, TimeTicks, UInteger32
# noSuchObject, noSuchInstance, endOfMibView (context-specific, primitive) and NULL.
_NO_VALUE = frozenset({_NULL, 0x80, 0x81, 0x82})


class Cell(NamedTuple):
    """One value from the agent: plain Python, plus the counter width (0: not a counter)."""

    value: Raw
    counter_bits: int


class DecodeError(ValueError):
    """A datagram that is not a well-formed SNMP message of the kind asked for (dropped)."""


class UnexpectedMessage(DecodeError):
    """A well-formed message of another version or PDU type than the caller reads: a v1 or
    v3 message, an inform where a trap was expected. Kept apart from garbage so that a
    receiver can count what senders really send."""

    def __init__(self, version: int, pdu: int | None = None):
        super().__init__(f"SNMP version field {version}, PDU tag "
                         + ("not read" if pdu is None else f"{pdu:#x}"))
        self.version = version
        self.pdu = pdu


class Message(NamedTuple):
    """A v2c message with a response or trap PDU (RFC 3416 gives both the same fields; a
    trap's error status and index are 0)."""

    request_id: int
    community: bytes
    error_status: int
    error_index: int
    varbinds: list[tuple[Oid, Cell | None]]


# --- encoding -------------------------------------------------------------------------


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + _length(len(body)) + body


def _integer(value: int) -> bytes:
    return _tlv(_INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def encode_oid(oid: Oid) -> bytes:
    """An OBJECT IDENTIFIER's BER encoding (tag, length, sub-identifiers)."""
    if len(oid) < 2 or oid[0] > 2 or (oid[0] < 2 and oid[1] > 39):
        raise ValueError(f"not an encodable OID: {'.'.join(map(str, oid))}")
    out = bytearray()
    for arc in (oid[0] * 40 + oid[1], *oid[2:]):
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return _tlv(_OID, bytes(out))


_NULL_TLV = b"\x05\x00"


def encode_request(
    community: bytes, request_id: int, pdu: int, oids: list[Oid], max_repetitions: int = 0
) -> bytes:
    """A v2c GET (``pdu=GET``) or GETBULK (non-repeaters 0) message asking for ``oids``."""
    varbinds = b"".join(_tlv(_SEQUENCE, encode_oid(oid) + _NULL_TLV) for oid in oids)
    second = _integer(max_repetitions if pdu == GETBULK else 0)
    body = _integer(request_id) + _integer(0) + second + _tlv(_SEQUENCE, varbinds)
    message = _integer(VERSION_2C) + _tlv(_OCTETS, community) + _tlv(pdu, body)
    return _tlv(_SEQUENCE, message)


# --- decoding -------------------------------------------------------------------------


def _header(data: bytes, at: int, end: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the TLV at ``at``."""
    if at + 2 > end:
        raise DecodeError("truncated")
    tag, first = data[at], data[at + 1]
    at += 2
    if first & 0x80:
        size = first & 0x7F
        if not 0 < size <= 4 or at + size > end:
            raise DecodeError("bad length")
        length = int.from_bytes(data[at : at + size], "big")
        at += size
    else:
        length = first
    if at + length > end:
        raise DecodeError("truncated")
    return tag, at, at + length


def _expect(data: bytes, at: int, end: int, tag: int) -> tuple[int, int]:
    found, start, stop = _header(data, at, end)
    if found != tag:
        raise DecodeError(f"expected tag {tag:#x}, found {found:#x}")
    return start, stop


def _int_at(data: bytes, at: int, end: int) -> tuple[int, int]:
    start, stop = _expect(data, at, end, _INTEGER)
    return int.from_bytes(data[start:stop], "big", signed=True), stop


def decode_oid(body: bytes) -> Oid:
    """Sub-identifiers of an OBJECT IDENTIFIER's contents."""
    arcs: list[int] = []
    value = 0
    for byte in body:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if not arcs or body[-1] & 0x80:
        raise DecodeError("bad OID")
    first = arcs[0]
    head = (0, first) if first < 40 else (1, first - 40) if first < 80 else (2, first - 80)
    return (*head, *arcs[1:])


def _value(tag: int, body: bytes) -> Cell | None:
    if tag == _INTEGER:
        return Cell(int.from_bytes(body, "big", signed=True), 0)
    if tag in (_OCTETS, _OPAQUE):
        return Cell(body, 0)
    if tag == _COUNTER32:
        return Cell(int.from_bytes(body, "big"), 32)
    if tag == _COUNTER64:
        return Cell(int.from_bytes(body, "big"), 64)
    if tag in _UNSIGNED:
        return Cell(int.from_bytes(body, "big"), 0)
    if tag == _OID:
        return Cell(".".join(map(str, decode_oid(body))), 0)
    if tag == _IPADDRESS:
        return Cell(".".join(map(str, body)), 0)
    if tag in _NO_VALUE:
        return None
    raise DecodeError(f"unknown value tag {tag:#x}")


def decode(data: bytes, pdu: int) -> Message:
    """A v2c message whose PDU has the tag ``pdu``. :class:`UnexpectedMessage` for another
    version (the rest of a v1 or v3 message is not read) or another PDU type,
    :class:`DecodeError` for anything malformed."""
    end = len(data)
    start, end = _expect(data, 0, end, _SEQUENCE)
    version, at = _int_at(data, start, end)
    if version != VERSION_2C:
        raise UnexpectedMessage(version)
    start, stop = _expect(data, at, end, _OCTETS)
    community = data[start:stop]
    found, start, end = _header(data, stop, end)
    if found != pdu:
        raise UnexpectedMessage(version, found)
    request_id, at = _int_at(data, start, end)
    status, at = _int_at(data, at, end)
    index, at = _int_at(data, at, end)
    at, end = _expect(data, at, end, _SEQUENCE)
    varbinds: list[tuple[Oid, Cell | None]] = []
    while at < end:
        at, stop = _expect(data, at, end, _SEQUENCE)
        start, after = _expect(data, at, stop, _OID)
        oid = decode_oid(data[start:after])
        tag, start, after = _header(data, after, stop)
        varbinds.append((oid, _value(tag, data[start:after])))
        at = stop
    return Message(request_id, community, status, index, varbinds)


def decode_response(data: bytes) -> Message:
    """A v2c response message; :class:`DecodeError` for anything else."""
    return decode(data, RESPONSE)


def decode_trap(data: bytes) -> Message:
    """A v2c SNMPv2-Trap message; :class:`DecodeError` for anything else (an inform too:
    answering it is not implemented)."""
    return decode(data, TRAP)


# --- transport ------------------------------------------------------------------------


class RequestTimeout(Exception):
    """No matching answer within timeout x (retries + 1)."""


class _Pending(NamedTuple):
    address: tuple[str, int]
    community: bytes
    future: asyncio.Future[Message]


class Client(asyncio.DatagramProtocol):
    """One UDP socket for every v2c target of a pollster; answers matched by request id."""

    def __init__(self) -> None:
        self._transport: asyncio.DatagramTransport | None = None
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(random.randrange(1, 1 << 30))

    async def open(self) -> None:
        """Bind the socket (once; call before requests run concurrently)."""
        if self._transport is None:
            loop = asyncio.get_running_loop()
            await loop.create_datagram_endpoint(lambda: self, local_addr=("0.0.0.0", 0))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            response = decode_response(data)
        except DecodeError:
            return  # garbage on our port: the request times out if nothing better comes
        pending = self._pending.get(response.request_id)
        if (
            pending is not None
            and pending.address == addr[:2]
            and pending.community == response.community
            and not pending.future.done()
        ):
            pending.future.set_result(response)

    async def request(
        self,
        address: tuple[str, int],
        community: bytes,
        pdu: int,
        oids: list[Oid],
        max_repetitions: int,
        timeout: float,
        retries: int,
    ) -> Message:
        """Send one request, resent (same request id) after each ``timeout`` up to
        ``retries`` times; the first matching answer wins."""
        if self._transport is None:
            raise RuntimeError("client is not open")
        request_id = next(self._ids) & 0x7FFFFFFF
        packet = encode_request(community, request_id, pdu, oids, max_repetitions)
        loop = asyncio.get_running_loop()
        try:
            for _ in range(retries + 1):
                future: asyncio.Future[Message] = loop.create_future()
                self._pending[request_id] = _Pending(address, community, future)
                self._transport.sendto(packet, address)
                try:
                    async with asyncio.timeout(timeout):
                        return await future
                except TimeoutError:
                    continue
        finally:
            self._pending.pop(request_id, None)
        raise RequestTimeout
