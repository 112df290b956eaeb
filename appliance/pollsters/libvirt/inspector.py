"""How to read libvirt: domains in, plain dataclasses out (no meters, no samples here).

Two paths give the same :class:`InstanceStats`: one bulk ``getAllDomainStats`` call per poll
where the driver fills it (QEMU), and per-domain calls where it does not (the ``test:///``
driver answers the bulk call with ``state.*`` only). Every libvirt call that can block runs
under a :class:`~appliance.pollsters.deadline.DeadlineRunner`, so one hung domain (a QEMU
monitor that does not answer) costs its own read only.
"""

from __future__ import annotations

import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import libvirt

from appliance.pollsters.deadline import DeadlineRunner, Outcome
from appliance.pollsters.libvirt.connection import Connection

log = logging.getLogger(__name__)
T = TypeVar("T")

STATE_NAMES = {
    libvirt.VIR_DOMAIN_NOSTATE: "nostate",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "blocked",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_SHUTOFF: "shutoff",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended",
}
# States in which a domain has a QEMU process whose counters can be read.
ACTIVE_STATES = frozenset(
    {libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED, libvirt.VIR_DOMAIN_PAUSED,
     libvirt.VIR_DOMAIN_SHUTDOWN, libvirt.VIR_DOMAIN_PMSUSPENDED}
)

BULK_GROUPS = (
    libvirt.VIR_DOMAIN_STATS_STATE
    | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
    | libvirt.VIR_DOMAIN_STATS_BALLOON
    | libvirt.VIR_DOMAIN_STATS_VCPU
    | libvirt.VIR_DOMAIN_STATS_INTERFACE
    | libvirt.VIR_DOMAIN_STATS_BLOCK
)
# NOWAIT: a domain whose monitor is busy answers with what it has instead of blocking the
# whole bulk call (libvirt >= 4.5).
BULK_FLAGS = libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT

_KIB_PER_MB = 1024.0


@dataclass(slots=True)
class DiskStats:
    """One block device of a domain; bytes, requests and nanoseconds as libvirt counts them."""

    name: str
    read_bytes: int | None = None
    read_requests: int | None = None
    write_bytes: int | None = None
    write_requests: int | None = None
    read_latency: int | None = None  # total ns spent in reads (cumulative)
    write_latency: int | None = None
    capacity: int | None = None
    allocation: int | None = None
    physical: int | None = None


@dataclass(slots=True)
class NicStats:
    """One network interface of a domain, counted from the host's side of the tap."""

    name: str
    rx_bytes: int | None = None
    rx_packets: int | None = None
    rx_drop: int | None = None
    rx_errors: int | None = None
    tx_bytes: int | None = None
    tx_packets: int | None = None
    tx_drop: int | None = None
    tx_errors: int | None = None


@dataclass(slots=True)
class InstanceStats:
    """One domain: identity, state and counters. Memory in MB (Ceilometer's unit)."""

    uuid: str
    name: str
    state: int
    os_type: str | None = None
    vcpus: int | None = None
    memory_mb: float | None = None
    cpu_time: int | None = None  # ns, cumulative
    cpu_util: float | None = None  # percent of vcpus; derived between polls by the pollster
    memory_usage_mb: float | None = None
    memory_resident_mb: float | None = None
    swap_in_mb: float | None = None
    swap_out_mb: float | None = None
    disks: list[DiskStats] = field(default_factory=list)
    nics: list[NicStats] = field(default_factory=list)

    @property
    def state_name(self) -> str:
        return STATE_NAMES.get(self.state, str(self.state))


@dataclass(slots=True)
class ReadResult:
    """One poll's view of the hypervisor."""

    path: str  # "bulk" or "per-domain"
    host: str
    instances: list[InstanceStats] = field(default_factory=list)
    present: set[str] = field(default_factory=set)  # every domain UUID listed, read or not
    failed: dict[str, str] = field(default_factory=dict)  # domain name -> why it was not read


def _mb(kib: int | None) -> float | None:
    return None if kib is None else kib / _KIB_PER_MB


def _memory_usage(stats: dict[str, int]) -> float | None:
    # Ceilometer's memory.usage: what the guest uses, from its balloon driver's view.
    if "available" in stats and "unused" in stats:
        return (stats["available"] - stats["unused"]) / _KIB_PER_MB
    return None


def _fill_memory(inst: InstanceStats, stats: dict[str, int]) -> None:
    inst.memory_usage_mb = _memory_usage(stats)
    inst.memory_resident_mb = _mb(stats.get("rss"))
    inst.swap_in_mb = _mb(stats.get("swap_in"))
    inst.swap_out_mb = _mb(stats.get("swap_out"))


def from_bulk(uuid: str, name: str, record: dict[str, int | str]) -> InstanceStats:
    """Turn one domain's ``getAllDomainStats`` record into :class:`InstanceStats`."""
    r = record
    inst = InstanceStats(uuid, name, int(r.get("state.state", 0)))
    inst.vcpus = r.get("vcpu.current")  # type: ignore[assignment]
    inst.memory_mb = _mb(r.get("balloon.maximum"))  # type: ignore[arg-type]
    inst.cpu_time = r.get("cpu.time")  # type: ignore[assignment]
    balloon = {k[8:]: v for k, v in r.items() if k.startswith("balloon.")}
    _fill_memory(inst, balloon)  # type: ignore[arg-type]
    for i in range(int(r.get("block.count", 0))):
        p = f"block.{i}."
        inst.disks.append(DiskStats(
            name=str(r[p + "name"]),
            read_bytes=r.get(p + "rd.bytes"), read_requests=r.get(p + "rd.reqs"),  # type: ignore[arg-type]
            write_bytes=r.get(p + "wr.bytes"), write_requests=r.get(p + "wr.reqs"),  # type: ignore[arg-type]
            read_latency=r.get(p + "rd.times"), write_latency=r.get(p + "wr.times"),  # type: ignore[arg-type]
            capacity=r.get(p + "capacity"), allocation=r.get(p + "allocation"),  # type: ignore[arg-type]
            physical=r.get(p + "physical"),  # type: ignore[arg-type]
        ))
    for i in range(int(r.get("net.count", 0))):
        p = f"net.{i}."
        inst.nics.append(NicStats(
            name=str(r[p + "name"]),
            rx_bytes=r.get(p + "rx.bytes"), rx_packets=r.get(p + "rx.pkts"),  # type: ignore[arg-type]
            rx_drop=r.get(p + "rx.drop"), rx_errors=r.get(p + "rx.errs"),  # type: ignore[arg-type]
            tx_bytes=r.get(p + "tx.bytes"), tx_packets=r.get(p + "tx.pkts"),  # type: ignore[arg-type]
            tx_drop=r.get(p + "tx.drop"), tx_errors=r.get(p + "tx.errs"),  # type: ignore[arg-type]
        ))
    return inst


def _bulk_is_complete(record: dict[str, int | str]) -> bool:
    # The test driver (and drivers without bulk stats) return only state.*; a real QEMU
    # domain, even shut off, has balloon.* and vcpu.* too.
    return any(not k.startswith("state.") for k in record)


#: A domain's cached device list is read again at least every this many polls (a device
#: hot-plugged into a running domain changes neither its id nor its state).
DEVICE_REFRESH_POLLS = 10


@dataclass(slots=True)
class _Devices:
    disks: list[str]
    nics: list[str]
    domain_id: int = -1  # the id of the run they were read in: a restart gets a new one
    polls_left: int = DEVICE_REFRESH_POLLS


def _devices(xml: str) -> _Devices:
    root = ET.fromstring(xml)
    disks = [
        t.get("dev", "")
        for d in root.iterfind("devices/disk")
        if d.find("source") is not None and (t := d.find("target")) is not None and t.get("dev")
    ]
    nics = [
        t.get("dev", "")
        for n in root.iterfind("devices/interface")
        if (t := n.find("target")) is not None and t.get("dev")
    ]
    return _Devices(disks, nics)


def _error_code(exc: BaseException | None) -> int | None:
    return exc.get_error_code() if isinstance(exc, libvirt.libvirtError) else None


class LibvirtReader:
    """Reads every domain of one connection once per call of :meth:`read`."""

    def __init__(self, connection: Connection, domain_timeout: float, workers: int = 4) -> None:
        self._connection = connection
        self._timeout = domain_timeout
        self._runner = DeadlineRunner(workers, "libvirt-read")
        self._os_types: dict[str, str] = {}
        # Device names per domain for the per-domain path: reading and parsing each domain's
        # XML every poll was a quarter of that path's CPU.
        self._devices: dict[str, _Devices] = {}
        self._latency_supported = True  # blockStatsFlags; the test driver lacks it
        # Whether getAllDomainStats carries counters here (QEMU) or only state (test driver);
        # None until a bulk call has answered.
        self._driver_fills_bulk: bool | None = None

    def forget(self, uuid: str) -> None:
        """Drop what is cached about a domain (it was redefined or undefined)."""
        self._os_types.pop(uuid, None)
        self._devices.pop(uuid, None)

    def read(self, deadline: float) -> ReadResult:
        """Read all domains; raises :class:`Disconnected` or :class:`BulkReadError`."""
        conn = self._connection.get()
        path = "bulk"
        records = self._call(f"bulk-{self._connection.opens}", lambda: self._bulk(conn), deadline)
        if records is None:
            # The bulk call hangs: a domain's QEMU monitor does not answer (NOWAIT skips a
            # domain only while another call holds its job, not the first call to a frozen
            # monitor). Read domain by domain so the others are still measured, each under
            # its own limit; while the bulk call stays stuck, later polls come here at once.
            path = "per-domain (bulk call hung)"
            listed = self._call(f"list-{self._connection.opens}", conn.listAllDomains, deadline)
            if listed is None:
                raise BulkReadError("libvirt does not answer: listing domains timed out")
            records = [(dom, {}) for dom in listed]
        result = ReadResult(path=path, host=self._connection.hostname)
        slow: dict[str, libvirt.virDomain] = {}
        for dom, record in records:
            uuid = dom.UUIDString()
            result.present.add(uuid)
            if record:  # learn once whether this driver's bulk stats carry counters
                self._driver_fills_bulk = self._driver_fills_bulk or _bulk_is_complete(record)
            if record and _bulk_is_complete(record):
                inst = from_bulk(uuid, dom.name(), record)
                inst.os_type = self._os_type(dom, uuid)
                result.instances.append(inst)
            else:
                slow[uuid] = dom
        if slow:
            if path == "bulk":
                result.path = "per-domain" if len(slow) == len(records) else "bulk+per-domain"
            self._read_each(slow, deadline, result)
        for uuid in (set(self._os_types) | set(self._devices)) - result.present:
            self.forget(uuid)  # an event may have forgotten it meanwhile
        return result

    def _call(self, key: str, fn: Callable[[], T], deadline: float) -> T | None:
        """One connection-wide call under the time limit; ``None`` if it hangs.

        Keys carry the connection number: a call stuck on a dropped connection must not keep
        the re-opened one from being read.
        """
        limit = min(deadline, time.monotonic() + self._timeout)
        out = self._runner.run({key: fn}, self._timeout, limit)[key]
        if out.ok:
            return out.value
        alive = self._connection.alive()
        if not alive:
            self._connection.drop(f"{key} failed: {out.error}")
        if out.exc is not None or not alive:
            raise BulkReadError(out.error or f"{key} failed")
        log.warning("libvirt_call_hung call=%s error=%s", key, out.error)
        return None

    def _bulk(self, conn: libvirt.virConnect) -> list[tuple[libvirt.virDomain, dict]]:
        try:
            return conn.getAllDomainStats(BULK_GROUPS, BULK_FLAGS)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                raise
            self._driver_fills_bulk = False  # no stats API at all: per-domain calls only
            return [(dom, {}) for dom in conn.listAllDomains()]

    def _read_each(
        self, doms: dict[str, libvirt.virDomain], deadline: float, result: ReadResult
    ) -> None:
        calls = {uuid: (lambda d=dom, u=uuid: self._read_one(d, u)) for uuid, dom in doms.items()}
        outcomes: dict[str, Outcome[InstanceStats]] = self._runner.run(
            calls, self._timeout, deadline
        )
        for uuid, out in outcomes.items():
            if out.ok and out.value is not None:
                result.instances.append(out.value)
                continue
            if _error_code(out.exc) == libvirt.VIR_ERR_NO_DOMAIN:
                result.present.discard(uuid)  # undefined between list and read
                continue
            result.failed[doms[uuid].name()] = out.error or "failed"

    def _read_one(self, dom: libvirt.virDomain, uuid: str) -> InstanceStats:
        """One domain through the bulk API if the driver fills it, else per-domain calls.

        QEMU fills it: after a bulk call hangs on one frozen domain, the stats API for a
        single other domain still answers at once, where blockStatsFlags was seen to hang.
        """
        if self._driver_fills_bulk is not False:
            ((_, record),) = dom.connect().domainListGetStats([dom], BULK_GROUPS, BULK_FLAGS)
            if _bulk_is_complete(record):
                inst = from_bulk(uuid, dom.name(), record)
                inst.os_type = self._os_type(dom, uuid)
                return inst
        return self.read_domain(dom, uuid)

    def describe(self, dom: libvirt.virDomain, uuid: str | None = None) -> InstanceStats:
        """Identity, state, size and CPU time of one domain: no device or memory counters."""
        uuid = uuid or dom.UUIDString()
        state, max_kib, _cur_kib, vcpus, cpu_time = dom.info()
        inst = InstanceStats(uuid, dom.name(), state, vcpus=vcpus, memory_mb=_mb(max_kib))
        inst.os_type = self._os_type(dom, uuid)
        if state in ACTIVE_STATES:
            inst.cpu_time = cpu_time
        return inst

    def read_domain(self, dom: libvirt.virDomain, uuid: str | None = None) -> InstanceStats:
        """Read one domain with per-domain calls (the path where bulk stats are missing)."""
        inst = self.describe(dom, uuid)
        if inst.state not in ACTIVE_STATES:
            self._devices.pop(inst.uuid, None)
            return inst
        try:
            _fill_memory(inst, dom.memoryStats())
            devices, fresh = self._domain_devices(dom, inst.uuid)
            try:
                self._read_devices(dom, inst, devices)
            except libvirt.libvirtError:
                if fresh:
                    raise
                # A device went away since the list was read: read the list again, once.
                self._devices.pop(inst.uuid, None)
                inst.disks.clear()
                inst.nics.clear()
                self._read_devices(dom, inst, self._domain_devices(dom, inst.uuid)[0])
        except libvirt.libvirtError as exc:
            # Shut off between info() and the counters: report what info() said.
            if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:
                raise
        return inst

    def _domain_devices(self, dom: libvirt.virDomain, uuid: str) -> tuple[_Devices, bool]:
        """The domain's disks and NICs, and whether they were read from its XML just now."""
        cached = self._devices.get(uuid)
        domain_id = dom.ID()
        if cached is not None and cached.domain_id == domain_id and cached.polls_left > 0:
            cached.polls_left -= 1
            return cached, False
        devices = _devices(dom.XMLDesc(0))
        devices.domain_id = domain_id
        self._devices[uuid] = devices
        return devices, True

    def _read_devices(self, dom: libvirt.virDomain, inst: InstanceStats, devices: _Devices) -> None:
        for dev in devices.disks:
            inst.disks.append(self._disk(dom, dev))
        for dev in devices.nics:
            inst.nics.append(_nic(dom, dev))

    def _disk(self, dom: libvirt.virDomain, dev: str) -> DiskStats:
        rd_req, rd_bytes, wr_req, wr_bytes, _errs = dom.blockStats(dev)
        capacity, allocation, physical = dom.blockInfo(dev)
        disk = DiskStats(dev, rd_bytes, rd_req, wr_bytes, wr_req,
                         capacity=capacity, allocation=allocation, physical=physical)
        if self._latency_supported:
            try:
                flags = dom.blockStatsFlags(dev)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                    raise
                # Permanently unsupported by this driver: stop asking (STYLE.md b4).
                log.info("libvirt_unsupported call=blockStatsFlags meters=disk.device.*.latency")
                self._latency_supported = False
            else:
                disk.read_latency = flags.get("rd_total_times")
                disk.write_latency = flags.get("wr_total_times")
        return disk

    def _os_type(self, dom: libvirt.virDomain, uuid: str) -> str:
        os_type = self._os_types.get(uuid)
        if os_type is None:
            os_type = self._os_types[uuid] = dom.OSType()
        return os_type


def _nic(dom: libvirt.virDomain, dev: str) -> NicStats:
    rx_b, rx_p, rx_e, rx_d, tx_b, tx_p, tx_e, tx_d = dom.interfaceStats(dev)
    return NicStats(dev, rx_b, rx_p, rx_d, rx_e, tx_b, tx_p, tx_d, tx_e)


class BulkReadError(Exception):
    """The call that lists every domain failed or hung: nothing was read this poll."""
