"""Discovery: sweep networks for SNMP agents, identify them, turn them into targets.

A sweep is gentle on purpose: hosts are started at most ``rate`` per second, at most
``concurrency`` at once, each credential is one GET (sysObjectID, sysDescr, sysName) with a
short timeout and few retries, and the first credential that answers wins. sysObjectID and
sysDescr pick the definition groups as for a polled target (:func:`definitions.select`).

Only reading happens here; :mod:`appliance.snmp_programs` keeps what was found in
the index, where the pollster picks it up at its next cycle.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from appliance.config import SnmpCredential, SnmpDiscoverySettings, SnmpTarget
from appliance.pollsters.snmp.client import Connections, Session, SnmpError
from appliance.pollsters.snmp.converters import text
from appliance.pollsters.snmp.definitions import Group, select
from appliance.pollsters.snmp.walkplan import SYS_DESCR, SYS_OBJECT_ID

SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)


@dataclass(frozen=True)
class Found:
    """An agent that answered, and the target it becomes."""

    target: SnmpTarget
    sys_object_id: str
    sys_descr: str
    sys_name: str
    groups: list[str]


@dataclass
class Sweep:
    """What one sweep did."""

    found: list[Found] = field(default_factory=list)
    probed: int = 0
    silent: int = 0
    seconds: float = 0.0


def hosts(networks: list[IPv4Network]) -> Iterator[IPv4Address]:
    """Every host address of the networks, each once (a /32 is its one address)."""
    seen: set[IPv4Address] = set()
    for network in networks:
        for address in network.hosts() if network.num_addresses > 2 else network:
            if address not in seen:
                seen.add(address)
                yield address


def target_name(address: IPv4Address, port: int) -> str:
    """A discovered target's name: its address (and port when not 161); stable across
    sweeps, unlike sysName."""
    return str(address) if port == 161 else f"{address}:{port}"


def candidate(address: IPv4Address, credential: SnmpCredential, settings: SnmpDiscoverySettings,
              groups: list[str] | None = None) -> SnmpTarget:
    """The target an answer with ``credential`` at ``address`` makes."""
    return SnmpTarget(
        **{name: getattr(credential, name) for name in SnmpCredential.model_fields},
        name=target_name(address, settings.port),
        host=str(address),
        port=settings.port,
        timeout=settings.timeout,
        retries=settings.retries,
        groups=groups or [],
    )


async def sweep(
    settings: SnmpDiscoverySettings,
    networks: list[IPv4Network],
    groups: dict[str, Group],
) -> Sweep:
    """Probe every host of ``networks`` with the configured credentials, gently."""
    started = time.monotonic()
    result = Sweep()
    bound = asyncio.Semaphore(settings.concurrency)
    connections = Connections()
    await connections.open()
    try:
        tasks = []
        for number, address in enumerate(hosts(networks)):
            # Rate: the n-th host starts no earlier than n / rate seconds into the sweep.
            delay = started + number / settings.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await bound.acquire()
            tasks.append(asyncio.create_task(_probe(connections, settings, address, groups,
                                                    bound, result)))
        await asyncio.gather(*tasks)
    finally:
        connections.close()
    result.found.sort(key=lambda f: IPv4Address(f.target.host))
    result.seconds = time.monotonic() - started
    return result


async def _probe(
    connections: Connections,
    settings: SnmpDiscoverySettings,
    address: IPv4Address,
    groups: dict[str, Group],
    bound: asyncio.Semaphore,
    result: Sweep,
) -> None:
    try:
        result.probed += 1
        for credential in settings.credentials:
            target = candidate(address, credential, settings)
            try:
                session = Session(await connections.requester(target), 1)
                scalars = await session.get([SYS_OBJECT_ID, SYS_DESCR, SYS_NAME])
            except SnmpError:
                continue  # silence or refusal: the next credential
            values = {oid: text(cell.value) for oid, cell in scalars.items()}
            object_id, descr = values.get(SYS_OBJECT_ID, ""), values.get(SYS_DESCR, "")
            picked = [g.name for g in select(groups, [], object_id, descr)]
            result.found.append(
                Found(candidate(address, credential, settings, picked), object_id, descr,
                      values.get(SYS_NAME, ""), picked)
            )
            return
        result.silent += 1
    finally:
        bound.release()
