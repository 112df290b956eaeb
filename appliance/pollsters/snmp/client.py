"""Talking to one SNMP agent: GET of scalars and multi-column GETBULK table walks.

This module knows the protocol and nothing about meters. v2c requests go through the
pollster's own codec and socket (:mod:`.v2c`, a quarter of pysnmp's CPU); v3 requests go
through pysnmp 7 (:mod:`.v3`, loaded only once a v3 target appears). Both hand over plain
Python values (:class:`Cell`). A
:class:`Session` counts request PDUs and adapts max-repetitions when an agent answers
``tooBig`` or stops answering large requests.

Errors are raised as :class:`SnmpError` with a message that names the failure and never
the community or the v3 keys (they can appear in nothing but the request itself).
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import Any

from appliance.config import SnmpTarget
from appliance.pollsters.snmp import v2c
from appliance.pollsters.snmp.answers import (
    Answer,
    Requester,
    SnmpError,
    Timeout,
    timeout_error,
)
from appliance.pollsters.snmp.definitions import Oid
from appliance.pollsters.snmp.v2c import Cell

# A broken agent that never leaves a table must not keep us walking until the deadline.
MAX_PDUS_PER_WALK = 10_000
# Varbinds per GET request: a few dozen scalars fit every agent's message size.
GET_CHUNK = 32
@dataclass
class Stats:
    """What a session did, for the target's health report."""

    pdus: int = 0
    backoffs: int = 0
    answered: bool = False  # the agent answered at least one request of this poll


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
            raise timeout_error(target) from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise SnmpError(f"cannot send a request: {reason}") from None
        return Answer(response.error_status, response.error_index, response.varbinds)


class Connections:
    """The ways out to agents, kept for a pollster's (or a sweep's) lifetime: one UDP socket
    for every v2c target, and :class:`v3.Engines` for v3 targets."""

    def __init__(self) -> None:
        self._v2c = v2c.Client()
        self._v3: Any = None  # v3.Engines, once a v3 target appears (pysnmp loads then)

    async def open(self) -> None:
        """Bind the v2c socket (before requests run concurrently)."""
        await self._v2c.open()

    async def requester(self, target: SnmpTarget) -> Requester:
        """A requester for ``target``, its address resolved now (once)."""
        if target.version == "3":
            if self._v3 is None:
                from appliance.pollsters.snmp.v3 import Engines

                self._v3 = Engines()
            return await self._v3.requester(target)
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                target.host, target.port, family=socket.AF_INET, type=socket.SOCK_DGRAM
            )
        except OSError:
            raise SnmpError(f"cannot resolve {target.host}:{target.port}") from None
        return V2cRequester(self._v2c, found[0][4][:2], target)

    def close(self) -> None:
        if self._v3 is not None:
            self._v3.close()
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


def _dotted(oid: Oid) -> str:
    return ".".join(map(str, oid))
