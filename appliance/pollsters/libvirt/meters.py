"""What to meter from a domain: one table of declarations and one loop that applies it.

Names, units and kinds are Ceilometer's, so dashboards and alarms written for Ceilometer
and Gnocchi read the same metrics. A meter names the :mod:`inspector` dataclass field it
takes its value from; a ``None`` field (not reported by this driver or domain) makes no
sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from operator import attrgetter

from appliance.model import Kind, Resource, Sample, resource_id_for
from appliance.pollsters.libvirt.inspector import DiskStats, InstanceStats, NicStats

C, G = Kind.CUMULATIVE, Kind.GAUGE


@dataclass(frozen=True, slots=True)
class Meter:
    name: str
    unit: str
    kind: Kind
    field: str


class MeterTable:
    """Meters read from one dataclass; the fields are fetched with one ``attrgetter`` call
    (a poll of 1000 domains builds some 20k samples, so this loop is the hot one)."""

    def __init__(self, *meters: Meter) -> None:
        self.meters = meters
        self.values = attrgetter(*(m.field for m in meters))


INSTANCE_METERS = MeterTable(
    Meter("cpu", "ns", C, "cpu_time"),
    Meter("cpu_util", "%", G, "cpu_util"),
    Meter("vcpus", "vcpu", G, "vcpus"),
    Meter("memory", "MB", G, "memory_mb"),
    Meter("memory.usage", "MB", G, "memory_usage_mb"),
    Meter("memory.resident", "MB", G, "memory_resident_mb"),
    Meter("memory.swap.in", "MB", C, "swap_in_mb"),
    Meter("memory.swap.out", "MB", C, "swap_out_mb"),
    Meter("power.state", "state", G, "state"),
)

DISK_METERS = MeterTable(
    Meter("disk.device.read.bytes", "B", C, "read_bytes"),
    Meter("disk.device.read.requests", "request", C, "read_requests"),
    Meter("disk.device.write.bytes", "B", C, "write_bytes"),
    Meter("disk.device.write.requests", "request", C, "write_requests"),
    Meter("disk.device.read.latency", "ns", C, "read_latency"),
    Meter("disk.device.write.latency", "ns", C, "write_latency"),
    Meter("disk.device.capacity", "B", G, "capacity"),
    Meter("disk.device.allocation", "B", G, "allocation"),
    Meter("disk.device.usage", "B", G, "physical"),
)

NIC_METERS = MeterTable(
    Meter("network.incoming.bytes", "B", C, "rx_bytes"),
    Meter("network.outgoing.bytes", "B", C, "tx_bytes"),
    Meter("network.incoming.packets", "packet", C, "rx_packets"),
    Meter("network.outgoing.packets", "packet", C, "tx_packets"),
    Meter("network.incoming.packets.drop", "packet", C, "rx_drop"),
    Meter("network.outgoing.packets.drop", "packet", C, "tx_drop"),
    Meter("network.incoming.packets.error", "packet", C, "rx_errors"),
    Meter("network.outgoing.packets.error", "packet", C, "tx_errors"),
)


def instance_resource(inst: InstanceStats, host: str) -> Resource:
    """The domain itself: its UUID is the resource id, as in Ceilometer and Gnocchi."""
    return Resource(
        inst.uuid,
        "instance",
        inst.uuid,
        {
            "name": inst.name,
            "uuid": inst.uuid,
            "vcpus": inst.vcpus,
            "memory": inst.memory_mb,
            "state": inst.state_name,
            "os_type": inst.os_type,
            "host": host,
        },
    )


# Device ids are uuid5 hashes of a key that stays the same from poll to poll.
_device_id = lru_cache(maxsize=1 << 16)(resource_id_for)


def disk_resource(inst: InstanceStats, disk: DiskStats) -> Resource:
    key = f"{inst.uuid}-{disk.name}"
    return Resource(_device_id(key), "instance_disk", key,
                    {"instance_id": inst.uuid, "name": disk.name})


def nic_resource(inst: InstanceStats, nic: NicStats) -> Resource:
    # Ceilometer's original id is "<domain name>-<uuid>-<tap>"; the id comes from the UUID
    # and device only, so renaming a domain keeps its interfaces' history.
    return Resource(_device_id(f"{inst.uuid}-{nic.name}"), "instance_network_interface",
                    f"{inst.name}-{inst.uuid}-{nic.name}",
                    {"instance_id": inst.uuid, "name": nic.name})


def samples_for(
    resource: Resource, source: object, meters: MeterTable, timestamp: float
) -> list[Sample]:
    """One sample per declared meter whose field the reader filled."""
    return [
        Sample(resource, m.name, m.unit, m.kind, float(v), timestamp)
        for m, v in zip(meters.meters, meters.values(source), strict=True)
        if v is not None
    ]


def instance_samples(inst: InstanceStats, resource: Resource, timestamp: float) -> list[Sample]:
    """Every sample of one domain (whose resource is ``resource``) and of its devices."""
    samples = samples_for(resource, inst, INSTANCE_METERS, timestamp)
    for disk in inst.disks:
        samples += samples_for(disk_resource(inst, disk), disk, DISK_METERS, timestamp)
    for nic in inst.nics:
        samples += samples_for(nic_resource(inst, nic), nic, NIC_METERS, timestamp)
    return samples
