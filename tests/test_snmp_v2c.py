"""The pollster's own v2c codec against pysnmp/pyasn1 as the oracle: every value type an
agent can send decodes to what the pysnmp path (``v3.to_cell``) makes of it, requests
decode with pyasn1 into the PDU we meant, and malformed datagrams are refused."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import api, rfc1902, rfc1905

from appliance.pollsters.snmp import v2c
from appliance.pollsters.snmp.v3 import to_cell

P = api.v2c

oids = st.tuples(st.integers(0, 2), st.integers(0, 39)).flatmap(
    lambda head: st.lists(st.integers(0, 2**32 - 1), max_size=12).map(lambda t: (*head, *t))
)
values = st.one_of(
    st.integers(-(2**31), 2**31 - 1).map(rfc1902.Integer32),
    st.binary(max_size=300).map(rfc1902.OctetString),
    oids.map(rfc1902.ObjectIdentifier),
    st.binary(min_size=4, max_size=4).map(rfc1902.IpAddress),
    st.integers(0, 2**32 - 1).map(rfc1902.Counter32),
    st.integers(0, 2**32 - 1).map(rfc1902.Gauge32),
    st.integers(0, 2**32 - 1).map(rfc1902.TimeTicks),
    st.integers(0, 2**32 - 1).map(rfc1902.Unsigned32),
    st.integers(0, 2**64 - 1).map(rfc1902.Counter64),
    st.binary(max_size=20).map(rfc1902.Opaque),
    st.sampled_from([rfc1905.noSuchObject, rfc1905.noSuchInstance, rfc1905.endOfMibView]),
    st.just(rfc1902.Null("")),
)


def _message(pdu: Any, request_id: int, varbinds: list[tuple[Any, Any]], status: int = 0) -> bytes:
    """A message with ``pdu`` (a fresh pysnmp PDU object) as pysnmp encodes it."""
    P.apiPDU.set_defaults(pdu)
    P.apiPDU.set_request_id(pdu, request_id)
    P.apiPDU.set_error_status(pdu, status)
    P.apiPDU.set_error_index(pdu, 1 if status else 0)
    P.apiPDU.set_varbinds(pdu, varbinds)
    message = P.Message()
    P.apiMessage.set_defaults(message)
    P.apiMessage.set_community(message, b"s3cret")
    P.apiMessage.set_pdu(message, pdu)
    return encoder.encode(message)


def _response(request_id: int, varbinds: list[tuple[Any, Any]], status: int = 0) -> bytes:
    """A response message as pysnmp encodes it."""
    return _message(P.ResponsePDU(), request_id, varbinds, status)


def _trap(request_id: int, varbinds: list[tuple[Any, Any]]) -> bytes:
    """An SNMPv2-Trap message as pysnmp encodes it (snmpTrapOID.0 among the varbinds)."""
    return _message(P.SNMPv2TrapPDU(), request_id, varbinds)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**31 - 1), st.lists(st.tuples(oids, values), max_size=30))
def test_responses_decode_as_the_pysnmp_path_reads_them(
    request_id: int, varbinds: list[tuple[tuple[int, ...], Any]]
) -> None:
    got = v2c.decode_response(_response(request_id, varbinds))
    assert got.request_id == request_id
    assert got.community == b"s3cret"
    assert (got.error_status, got.error_index) == (0, 0)
    assert got.varbinds == [(oid, to_cell(value)) for oid, value in varbinds]


LINK_DOWN = rfc1902.ObjectIdentifier((1, 3, 6, 1, 6, 3, 1, 1, 5, 3))
UPTIME, TRAP_OID = (1, 3, 6, 1, 2, 1, 1, 3, 0), (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**31 - 1), st.lists(st.tuples(oids, values), max_size=30))
def test_traps_decode_as_the_pysnmp_path_reads_them(
    request_id: int, varbinds: list[tuple[tuple[int, ...], Any]]
) -> None:
    sent = [(UPTIME, rfc1902.TimeTicks(42)), (TRAP_OID, LINK_DOWN), *varbinds]
    got = v2c.decode_trap(_trap(request_id, sent))
    assert (got.request_id, got.community) == (request_id, b"s3cret")
    assert got.varbinds == [(oid, to_cell(value)) for oid, value in sent]
    assert got.varbinds[1] == (TRAP_OID, v2c.Cell("1.3.6.1.6.3.1.1.5.3", 0))


def test_a_trap_reader_tells_other_messages_from_garbage() -> None:
    """What the trap receiver counts apart: informs and responses (v2c, another PDU), v1
    traps and v3 messages (another version, not read further), and plain garbage."""
    vbs = [(TRAP_OID, LINK_DOWN)]
    v1_trap = api.v1.TrapPDU()
    api.v1.apiTrapPDU.set_defaults(v1_trap)
    v1 = api.v1.Message()
    api.v1.apiMessage.set_defaults(v1)
    api.v1.apiMessage.set_community(v1, b"s3cret")
    api.v1.apiMessage.set_pdu(v1, v1_trap)
    v3 = bytes.fromhex("303e020103")  # SEQUENCE { INTEGER 3 (snmpV3), ... }, cut short
    for packet, version, pdu in (
        (_message(P.InformRequestPDU(), 5, vbs), v2c.VERSION_2C, v2c.INFORM),
        (_response(5, vbs), v2c.VERSION_2C, v2c.RESPONSE),
        (encoder.encode(v1), v2c.VERSION_1, None),
        (v3 + bytes(59), v2c.VERSION_3, None),
    ):
        with pytest.raises(v2c.UnexpectedMessage) as caught:
            v2c.decode_trap(packet)
        assert (caught.value.version, caught.value.pdu) == (version, pdu)
    for garbage in (b"", b"\x30\x00", _trap(5, vbs)[:-3], b"GET / HTTP/1.0\r\n\r\n"):
        with pytest.raises(v2c.DecodeError) as caught:
            v2c.decode_trap(garbage)
        assert not isinstance(caught.value, v2c.UnexpectedMessage)


def test_error_status_and_counter_widths_are_kept() -> None:
    oid = (1, 3, 6, 1, 2, 1, 2, 2, 1, 10, 1)
    got = v2c.decode_response(_response(7, [(oid, rfc1902.Counter32(5))], status=v2c.TOO_BIG))
    assert (got.error_status, got.error_index) == (v2c.TOO_BIG, 1)
    assert got.varbinds == [(oid, v2c.Cell(5, 32))]
    c64 = v2c.decode_response(_response(7, [(oid, rfc1902.Counter64(2**64 - 1))]))
    assert c64.varbinds == [(oid, v2c.Cell(2**64 - 1, 64))]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 2**31 - 1),
    st.lists(oids, min_size=1, max_size=40),
    st.sampled_from([v2c.GET, v2c.GETBULK]),
    st.integers(1, 1000),
)
def test_requests_decode_with_pyasn1_as_the_pdu_we_meant(
    request_id: int, asked: list[tuple[int, ...]], pdu: int, repetitions: int
) -> None:
    packet = v2c.encode_request(b"public", request_id, pdu, asked, repetitions)
    message, rest = decoder.decode(packet, asn1Spec=P.Message())
    assert rest == b""
    assert P.apiMessage.get_community(message) == b"public"
    body = P.apiMessage.get_pdu(message)
    if pdu == v2c.GETBULK:
        assert isinstance(body, P.GetBulkRequestPDU)
        assert P.apiBulkPDU.get_max_repetitions(body) == repetitions
        assert P.apiBulkPDU.get_non_repeaters(body) == 0
    else:
        assert isinstance(body, P.GetRequestPDU)
    assert P.apiPDU.get_request_id(body) == request_id
    assert [tuple(o) for o, _ in P.apiPDU.get_varbinds(body)] == asked


def test_anything_but_a_v2c_response_is_refused() -> None:
    good = _response(1, [((1, 3, 6, 1), rfc1902.Integer32(1))])
    request = v2c.encode_request(b"s3cret", 1, v2c.GET, [(1, 3, 6, 1)])
    v1 = bytearray(good)
    v1[4] = 0  # version INTEGER 1 -> 0 (SNMPv1)
    for bad in (b"", b"\x30", good[:-1], request, bytes(v1), b"\x30\x03\x02\x01\x01"):
        with pytest.raises(v2c.DecodeError):
            v2c.decode_response(bad)
    with pytest.raises(ValueError):
        v2c.encode_oid((3, 1))


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_a_damaged_datagram_decodes_or_is_refused_never_crashes(data: st.DataObject) -> None:
    packet = bytearray(_response(9, [((1, 3, 6, 1, 2, 1, 1, 3, 0), rfc1902.TimeTicks(5))] * 3))
    for _ in range(data.draw(st.integers(1, 4))):
        packet[data.draw(st.integers(0, len(packet) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(packet)))
    with contextlib.suppress(v2c.DecodeError):  # any other exception fails the test
        assert isinstance(v2c.decode_response(bytes(packet[:cut])), v2c.Message)
