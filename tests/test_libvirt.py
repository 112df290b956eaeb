"""The libvirt pollster against libvirt's own ``test:///`` driver, on generated node XML.

The test driver is real libvirt (same API, same errors, real lifecycle events); only its
counters are synthetic. Its bulk call returns ``state.*`` only, so these tests exercise the
per-domain path; tests/test_libvirt_qemu.py covers the bulk path under a real libvirtd.
"""

from __future__ import annotations

import queue
import time
import uuid
from pathlib import Path

import libvirt
import pytest

from appliance.config import LibvirtSettings
from appliance.model import Kind, PollResult, Resource, resource_id_for
from appliance.pollsters.libvirt import LibvirtPollster
from appliance.pollsters.libvirt.inspector import from_bulk
from appliance.pollsters.libvirt.pollster import cpu_util

SHUTOFF_EVERY = 4  # every 4th domain is defined but shut off
INSTANCE_METERS = {"cpu", "vcpus", "memory", "power.state"}
DISK_METERS = {
    "disk.device.read.bytes", "disk.device.read.requests", "disk.device.write.bytes",
    "disk.device.write.requests", "disk.device.capacity", "disk.device.allocation",
    "disk.device.usage",
}
NIC_METERS = {
    f"network.{d}.{m}" for d in ("incoming", "outgoing")
    for m in ("bytes", "packets", "packets.drop", "packets.error")
}


def domain_uuid(i: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"test-domain-{i}"))


def domain_xml(i: int, shutoff: bool = False, name: str | None = None) -> str:
    """A test-driver domain: 1-4 vCPUs, 256 MiB-1 GiB, two disks, one NIC.

    The test driver names every domain's first NIC ``testnet0`` itself.
    """
    runstate = "<test:runstate>5</test:runstate>" if shutoff else ""
    return f"""<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
  <name>{name or f"vm{i}"}</name><uuid>{domain_uuid(i)}</uuid>
  <memory unit='KiB'>{262144 * (1 + i % 4)}</memory><vcpu>{1 + i % 4}</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><source file='/guest/vm{i}.img'/>
      <target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='disk'><source file='/guest/vm{i}-data.img'/>
      <target dev='vdb' bus='virtio'/></disk>
    <disk type='file' device='cdrom'><target dev='sda' bus='sata'/></disk>
    <interface type='network'><mac address='52:54:00:00:{i // 256:02x}:{i % 256:02x}'/>
      <source network='default'/></interface>
  </devices>{runstate}
</domain>"""


def node_xml(count: int) -> str:
    return "<node>" + "".join(
        domain_xml(i, shutoff=i % SHUTOFF_EVERY == SHUTOFF_EVERY - 1) for i in range(count)
    ) + "</node>"


def write_node(directory: Path, count: int) -> str:
    """Write a node file and return its ``test:///`` URI."""
    path = directory / f"node-{count}.xml"
    path.write_text(node_xml(count))
    return f"test://{path}"


@pytest.fixture
def pollster(tmp_path: Path):
    p = LibvirtPollster(LibvirtSettings(uri=write_node(tmp_path, 24), domain_timeout=10))
    yield p
    p.close()


def poll(p: LibvirtPollster) -> PollResult:
    return p.poll(p.targets(), time.monotonic() + 30)


def by_resource(result: PollResult) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for s in result.samples:
        out.setdefault(s.resource.id, {})[s.metric_name] = s.value
    return out


def resources(result: PollResult) -> dict[str, Resource]:
    return {s.resource.id: s.resource for s in result.samples}


def test_every_domain_becomes_an_instance_with_its_attributes(pollster):
    result = poll(pollster)
    (report,) = result.reports
    assert report.ok and report.detail["domains"] == 24 and report.detail["read"] == 24
    assert report.detail["path"] == "per-domain"  # the test driver's bulk call is state only
    instances = {r.id: r for r in resources(result).values() if r.type == "instance"}
    assert set(instances) == {domain_uuid(i) for i in range(24)}
    vm5 = instances[domain_uuid(5)]
    assert vm5.original_resource_id == domain_uuid(5)
    assert vm5.attributes == {
        "name": "vm5", "uuid": domain_uuid(5), "vcpus": 2, "memory": 512.0,
        "state": "running", "os_type": "linux", "host": pollster.connection.hostname,
    }
    assert instances[domain_uuid(3)].attributes["state"] == "shutoff"


def test_running_domains_have_ceilometers_meters_and_shut_off_ones_only_their_size(pollster):
    result = poll(pollster)
    values = by_resource(result)
    for i in range(24):
        uid = domain_uuid(i)
        if i % SHUTOFF_EVERY == SHUTOFF_EVERY - 1:
            assert values[uid] == {"vcpus": 1 + i % 4, "memory": 256.0 * (1 + i % 4),
                                   "power.state": libvirt.VIR_DOMAIN_SHUTOFF}
            assert resource_id_for(f"{uid}-vda") not in values
            continue
        assert set(values[uid]) == INSTANCE_METERS  # cpu_util needs a second poll
        assert values[uid]["power.state"] == libvirt.VIR_DOMAIN_RUNNING
        for dev in ("vda", "vdb"):
            assert set(values[resource_id_for(f"{uid}-{dev}")]) == DISK_METERS
        assert resource_id_for(f"{uid}-sda") not in values  # an empty cdrom has no counters
        assert set(values[resource_id_for(f"{uid}-testnet0")]) == NIC_METERS


def test_units_kinds_and_device_resources_follow_ceilometer(pollster):
    result = poll(pollster)
    meta = {s.metric_name: (s.unit, s.kind) for s in result.samples}
    assert meta["cpu"] == ("ns", Kind.CUMULATIVE)
    assert meta["memory"] == ("MB", Kind.GAUGE)
    assert meta["vcpus"] == ("vcpu", Kind.GAUGE)
    assert meta["power.state"] == ("state", Kind.GAUGE)
    assert meta["disk.device.read.bytes"] == ("B", Kind.CUMULATIVE)
    assert meta["disk.device.write.requests"] == ("request", Kind.CUMULATIVE)
    assert meta["disk.device.capacity"] == ("B", Kind.GAUGE)
    assert meta["network.incoming.packets.drop"] == ("packet", Kind.CUMULATIVE)
    uid = domain_uuid(2)
    res = resources(result)
    disk = res[resource_id_for(f"{uid}-vdb")]
    assert (disk.type, disk.original_resource_id) == ("instance_disk", f"{uid}-vdb")
    assert disk.attributes == {"instance_id": uid, "name": "vdb"}
    nic = res[resource_id_for(f"{uid}-testnet0")]
    assert (nic.type, nic.original_resource_id) == (
        "instance_network_interface", f"vm2-{uid}-testnet0")
    assert nic.attributes == {"instance_id": uid, "name": "testnet0"}


def test_cpu_util_comes_from_the_cpu_delta_between_polls(pollster):
    first = by_resource(poll(pollster))
    second = by_resource(poll(pollster))
    for i in (0, 1, 2, 4, 5, 6):
        uid = domain_uuid(i)
        assert "cpu_util" not in first[uid]
        assert second[uid]["cpu"] > first[uid]["cpu"] and second[uid]["cpu_util"] > 0
    assert "cpu_util" not in second[domain_uuid(3)]  # shut off: no CPU time at all


def test_cpu_util_is_the_share_of_all_vcpus():
    # 1.5 s of CPU over 1 s of wall time on 2 vCPUs: 75 %.
    assert cpu_util((10_000_000_000, 100.0), 11_500_000_000, 101.0, 2) == 75.0
    assert cpu_util(None, 11_500_000_000, 101.0, 2) is None  # first sight
    assert cpu_util((10_000_000_000, 100.0), 5, 101.0, 2) is None  # restarted: counter reset


def test_an_undefined_domain_ends_once(pollster):
    poll(pollster)
    dom = pollster.connection.get().lookupByUUIDString(domain_uuid(3))
    dom.undefine()
    result = poll(pollster)
    (ended,) = result.resources
    assert ended.id == domain_uuid(3) and ended.ended_at is not None
    assert ended.attributes["name"] == "vm3" and ended.attributes["last_event"] == "undefined"
    assert domain_uuid(3) not in by_resource(result)
    assert poll(pollster).resources == []


def test_libvirt_errors_are_logged_not_printed(pollster, capfd, caplog):
    conn = pollster.connection.get()
    caplog.set_level("DEBUG", logger="appliance.pollsters.libvirt.connection")
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByName("no-such-domain")
    assert capfd.readouterr().err == ""
    assert "libvirt_error code=42" in caplog.text


def test_an_unreachable_uri_is_reported_and_retried_with_backoff(tmp_path):
    p = LibvirtPollster(LibvirtSettings(uri=f"test://{tmp_path}/missing.xml",
                                        lifecycle_events=False))
    try:
        first, second = poll(p), poll(p)
    finally:
        p.close()
    assert "cannot open" in first.reports[0].error
    assert "not connected (next attempt in" in second.reports[0].error
    assert first.samples == second.samples == []


class Events:
    """Collects what the pollster emits and waits for a matching resource."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[PollResult] = queue.SimpleQueue()

    def emit(self, result: PollResult) -> None:
        self.queue.put(result)

    def next_for(self, uid: str) -> Resource:
        while True:
            result = self.queue.get(timeout=10)  # a guard against hanging, not a speed test
            for r in result.resources:
                if r.id == uid:
                    return r


def test_lifecycle_events_update_the_instance_between_polls(pollster):
    events = Events()
    pollster.start_events(events.emit)
    poll(pollster)
    conn = pollster.connection.get()
    uid = domain_uuid(1)
    dom = conn.lookupByUUIDString(uid)

    dom.suspend()
    assert events.next_for(uid).attributes["state"] == "paused"
    dom.resume()
    r = events.next_for(uid)
    assert (r.attributes["state"], r.attributes["last_event"]) == ("running", "resumed")
    # (The test driver's reboot emits no event; QEMU's needs a guest OS to act on ACPI.)
    dom.destroy()
    r = events.next_for(uid)
    assert (r.attributes["state"], r.ended_at) == ("shutoff", None)
    dom.create()
    assert events.next_for(uid).attributes["state"] == "running"
    dom.destroy()
    events.next_for(uid)
    dom.undefine()
    r = events.next_for(uid)
    assert r.ended_at is not None and r.attributes["name"] == "vm1"

    new = conn.defineXML(domain_xml(100, name="fresh"))
    r = events.next_for(domain_uuid(100))
    assert r.attributes["name"] == "fresh" and r.attributes["last_event"] == "defined"
    assert r.attributes["state"] == "shutoff"
    new.create()
    assert events.next_for(domain_uuid(100)).attributes["state"] == "running"
    # The next poll agrees with the events and remembers the last one.
    instances = {r.id: r for r in resources(poll(pollster)).values() if r.type == "instance"}
    assert uid not in instances
    assert instances[domain_uuid(100)].attributes["last_event"] == "started"


# One domain's getAllDomainStats record, recorded from QEMU 7.2 under libvirt 9.0 on this
# machine class (a 128 MiB domain in firmware; vcpu.*, dirtyrate.* and vm.* keys trimmed).
QEMU_BULK_RECORD = {
    "state.state": 1, "state.reason": 1, "cpu.time": 1808170000, "cpu.user": 137187000,
    "cpu.system": 1670982000, "balloon.current": 131072, "balloon.maximum": 131072,
    "balloon.last-update": 0, "balloon.rss": 39808, "vcpu.current": 1, "vcpu.maximum": 1,
    "net.count": 1, "net.0.name": "tapprobe0", "net.0.rx.bytes": 90, "net.0.rx.pkts": 1,
    "net.0.rx.errs": 0, "net.0.rx.drop": 0, "net.0.tx.bytes": 0, "net.0.tx.pkts": 0,
    "net.0.tx.errs": 0, "net.0.tx.drop": 0, "block.count": 1, "block.0.name": "vda",
    "block.0.path": "/tmp/lvq/disk.qcow2", "block.0.backingIndex": 1, "block.0.rd.reqs": 0,
    "block.0.rd.bytes": 0, "block.0.rd.times": 0, "block.0.wr.reqs": 0, "block.0.wr.bytes": 0,
    "block.0.wr.times": 0, "block.0.fl.reqs": 0, "block.0.fl.times": 0,
    "block.0.allocation": 0, "block.0.capacity": 67108864, "block.0.physical": 204800,
}


def test_a_recorded_qemu_bulk_record_maps_onto_the_same_stats():
    inst = from_bulk("u-1", "probe", QEMU_BULK_RECORD)
    assert (inst.state, inst.vcpus, inst.memory_mb, inst.cpu_time) == (1, 1, 128.0, 1808170000)
    assert (inst.memory_resident_mb, inst.memory_usage_mb) == (38.875, None)  # no guest driver
    (disk,) = inst.disks
    assert (disk.name, disk.capacity, disk.physical, disk.read_latency) == (
        "vda", 67108864, 204800, 0)
    (nic,) = inst.nics
    assert (nic.name, nic.rx_bytes, nic.rx_packets, nic.tx_drop) == ("tapprobe0", 90, 1, 0)


def test_a_domain_restarted_with_another_disk_is_read_with_it(pollster):
    """Device lists are cached between polls; a restart (a new domain id) reads them again,
    even with lifecycle events off."""
    uid = domain_uuid(2)

    def disks() -> set[str]:
        return {
            r.attributes["name"] for r in resources(poll(pollster)).values()
            if r.type == "instance_disk" and r.attributes["instance_id"] == uid
        }

    assert disks() == {"vda", "vdb"}
    assert disks() == {"vda", "vdb"}  # from the cache
    conn = pollster.connection.get()
    conn.lookupByUUIDString(uid).destroy()
    extra = ("<disk type='file' device='disk'><source file='/guest/vm2-more.img'/>"
             "<target dev='vdc' bus='virtio'/></disk>")
    conn.defineXML(domain_xml(2).replace("<disk type='file' device='cdrom'>",
                                         extra + "<disk type='file' device='cdrom'>")).create()
    assert disks() == {"vda", "vdb", "vdc"}
