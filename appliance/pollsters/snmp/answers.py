"""What a request to an agent gives back, and how it fails: shared by the v2c path
(:mod:`.client`) and the v3 path (:mod:`.v3`), which load independently.

Errors never carry the community or the v3 keys.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from appliance.config import SnmpTarget
from appliance.pollsters.snmp.definitions import Oid
from appliance.pollsters.snmp.v2c import Cell


class SnmpError(Exception):
    """A failed request, described without secrets."""


class Timeout(SnmpError):
    """No answer within the target's timeout and retries."""


class Answer(NamedTuple):
    """A response PDU: error-status (0: none), error-index and the varbinds."""

    status: int
    index: int
    varbinds: list[tuple[Oid, Cell | None]]


class Requester(Protocol):
    """Sends one request PDU to one target: a GET (``repetitions`` None) or a GETBULK."""

    async def __call__(self, repetitions: int | None, oids: list[Oid]) -> Answer: ...


def timeout_error(target: SnmpTarget) -> Timeout:
    """The error of a request that got no answer, naming the likely causes."""
    who = "community" if target.version == "2c" else "v3 credentials"
    return Timeout(
        f"no response from {target.host}:{target.port} within {target.timeout:g}s "
        f"x {target.retries + 1} tries (agent down, port closed, or wrong {who})"
    )
