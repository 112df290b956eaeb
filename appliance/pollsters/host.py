"""The appliance's own host, read through psutil: CPU, memory, load, disks, NICs, filesystems.

What is metered is the ``*_METERS`` tables (meter name, unit, kind, psutil field, scale);
how it is read is psutil's. Names and units follow Ceilometer's ``hardware.*`` meters, so a
host read here and the same host read over SNMP (UCD-SNMP-MIB) give comparable series.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import psutil

from appliance.config import HostSettings, Settings, matches_any
from appliance.model import Kind, PollResult, Resource, Sample, TargetReport
from appliance.pollsters.base import Pollster

G, C = Kind.GAUGE, Kind.CUMULATIVE


class Meter(NamedTuple):
    name: str
    unit: str
    kind: Kind
    field: str
    scale: float = 1.0


MEMORY_METERS = (
    Meter("hardware.memory.total", "KB", G, "total", 1 / 1024),
    Meter("hardware.memory.used", "KB", G, "used", 1 / 1024),
    Meter("hardware.memory.avail", "KB", G, "available", 1 / 1024),
    Meter("hardware.memory.buffer", "KB", G, "buffers", 1 / 1024),
    Meter("hardware.memory.cached", "KB", G, "cached", 1 / 1024),
)
SWAP_METERS = (
    Meter("hardware.memory.swap.total", "KB", G, "total", 1 / 1024),
    Meter("hardware.memory.swap.avail", "KB", G, "free", 1 / 1024),
    Meter("hardware.memory.swap.in", "B", C, "sin"),
    Meter("hardware.memory.swap.out", "B", C, "sout"),
)
CPU_TIME_METERS = tuple(
    Meter(f"hardware.cpu.time.{mode}", "ns", C, mode, 1e9)
    for mode in ("user", "system", "idle", "iowait", "steal")
)
DISK_METERS = (
    Meter("hardware.disk.read.bytes", "B", C, "read_bytes"),
    Meter("hardware.disk.write.bytes", "B", C, "write_bytes"),
    Meter("hardware.disk.read.requests", "request", C, "read_count"),
    Meter("hardware.disk.write.requests", "request", C, "write_count"),
    Meter("hardware.disk.read.time", "ms", C, "read_time"),
    Meter("hardware.disk.write.time", "ms", C, "write_time"),
)
NIC_METERS = (
    Meter("hardware.network.incoming.bytes", "B", C, "bytes_recv"),
    Meter("hardware.network.outgoing.bytes", "B", C, "bytes_sent"),
    Meter("hardware.network.incoming.packets", "packet", C, "packets_recv"),
    Meter("hardware.network.outgoing.packets", "packet", C, "packets_sent"),
    Meter("hardware.network.incoming.errors", "packet", C, "errin"),
    Meter("hardware.network.outgoing.errors", "packet", C, "errout"),
    Meter("hardware.network.incoming.drop", "packet", C, "dropin"),
    Meter("hardware.network.outgoing.drop", "packet", C, "dropout"),
)
FS_METERS = (
    Meter("hardware.disk.size.total", "KB", G, "total", 1 / 1024),
    Meter("hardware.disk.size.used", "KB", G, "used", 1 / 1024),
    Meter("hardware.disk.size.free", "KB", G, "free", 1 / 1024),
)

# Pseudo filesystems are not storage: leave them out unless the config names them.
VIRTUAL_FS = {"tmpfs", "devtmpfs", "overlay", "squashfs", "proc", "sysfs", "cgroup2", "nsfs"}


def metered(resource: Resource, record: Any, meters: Iterable[Meter], ts: float) -> list[Sample]:
    """One sample per meter whose field the record has (psutil fields vary by platform)."""
    out = []
    for m in meters:
        value = getattr(record, m.field, None)
        if value is not None:
            out.append(Sample(resource, m.name, m.unit, m.kind, value * m.scale, ts))
    return out


class HostPollster(Pollster):
    source = "host"

    def __init__(self, settings: HostSettings, hostname: str | None = None):
        self.settings = settings
        self.hostname = hostname or socket.getfqdn()
        # The first cpu_percent() call only sets psutil's baseline.
        psutil.cpu_percent(interval=None)

    def poll(self, targets: Sequence[str], deadline: float) -> PollResult:
        started, t0 = time.time(), time.monotonic()
        ts = started
        host = Resource.from_key(
            "host",
            f"host://{self.hostname}",
            {
                "host_name": self.hostname,
                "cpu_count": psutil.cpu_count(),
                "boot_time": psutil.boot_time(),
                "os": os.uname().sysname,
                "kernel": os.uname().release,
            },
        )
        samples: list[Sample] = []
        load1, load5, load15 = os.getloadavg()
        for name, value in (("1min", load1), ("5min", load5), ("15min", load15)):
            samples.append(Sample(host, f"hardware.cpu.load.{name}", "process", G, value, ts))
        samples.append(Sample(host, "hardware.cpu.util", "%", G, psutil.cpu_percent(None), ts))
        samples += metered(host, psutil.cpu_times(), CPU_TIME_METERS, ts)
        samples += metered(host, psutil.virtual_memory(), MEMORY_METERS, ts)
        samples += metered(host, psutil.swap_memory(), SWAP_METERS, ts)
        excluded = re.compile(self.settings.exclude_disks)
        disks = {
            d: c
            for d, c in (psutil.disk_io_counters(perdisk=True) or {}).items()
            if not excluded.search(d)
        }
        samples += self._per_device(disks, "host_disk", DISK_METERS, ts)
        nics = {
            n: c
            for n, c in psutil.net_io_counters(pernic=True).items()
            if not matches_any(n, self.settings.exclude_nics)
        }
        samples += self._per_device(nics, "host_network_interface", NIC_METERS, ts)
        samples += self._filesystems(ts)
        report = TargetReport(
            self.source, self.hostname, started, time.monotonic() - t0, len(samples)
        )
        return PollResult(samples=samples, reports=[report])

    def _per_device(
        self, counters: dict[str, Any], type_: str, meters: Sequence[Meter], ts: float
    ) -> list[Sample]:
        out = []
        for device, record in sorted(counters.items()):
            res = Resource.from_key(
                type_,
                f"host://{self.hostname}/{type_}/{device}",
                {"host_name": self.hostname, "device_name": device},
            )
            out += metered(res, record, meters, ts)
        return out

    def _filesystems(self, ts: float) -> list[Sample]:
        out = []
        include = self.settings.include_filesystems
        for part in psutil.disk_partitions(all=bool(include)):
            if include:
                if not matches_any(part.mountpoint, include):
                    continue
            elif part.fstype in VIRTUAL_FS:
                continue
            try:
                usage = psutil.disk_usage(part.mountpoint)
            except OSError:
                continue  # unmounted between the listing and the read
            res = Resource.from_key(
                "host_filesystem",
                f"host://{self.hostname}/fs{part.mountpoint}",
                {
                    "host_name": self.hostname,
                    "mountpoint": part.mountpoint,
                    "device_name": part.device,
                    "fstype": part.fstype,
                },
            )
            out += metered(res, usage, FS_METERS, ts)
        return out


def build(settings: Settings) -> HostPollster:
    return HostPollster(settings.pollsters.host)
