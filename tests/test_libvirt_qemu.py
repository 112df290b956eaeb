"""The libvirt pollster against a real QEMU domain under a real libvirtd: the bulk path.

The fixture starts virtlogd and libvirtd by hand (no systemd here), libvirtd with its own
config and socket directory under a temp dir so nothing collides with another daemon. The
domain is tiny and has no OS (it sits in firmware), which is enough for QEMU to report CPU,
balloon, block and tap counters. Where this cannot run, the tests are skipped with the
reason (pytest -ra prints it).
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from appliance.config import LibvirtSettings
from appliance.model import PollResult, Resource, resource_id_for
from appliance.pollsters.libvirt import LibvirtPollster
from appliance.pollsters.libvirt.events import REBOOTED

pytestmark = pytest.mark.slow

QEMU_CONF = Path("/etc/libvirt/qemu.conf")


def _why_not() -> str | None:
    for tool in ("libvirtd", "virtlogd", "qemu-system-x86_64", "qemu-img"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt libvirt-daemon libvirt-daemon-driver-qemu " \
                   "qemu-system-x86 qemu-utils; `make test` installs them)"
    if os.geteuid() != 0:
        return "a privileged libvirtd (tap devices, /run/libvirt) needs root"
    if not Path("/dev/net/tun").exists():
        return "no /dev/net/tun for the domain's tap NIC"
    return None


def _prepare_host() -> None:
    """The recipe of FIELD-NOTES.md: the accounts libvirtd insists on, QEMU run as root."""
    try:
        grp.getgrnam("kvm")
    except KeyError:
        subprocess.run(["groupadd", "-r", "kvm"], check=True)
    try:
        pwd.getpwnam("libvirt-qemu")
    except KeyError:
        subprocess.run(["groupadd", "-rf", "libvirt-qemu"], check=True)
        subprocess.run(["useradd", "-r", "-g", "libvirt-qemu", "-G", "kvm", "-d",
                        "/var/lib/libvirt", "-s", "/usr/sbin/nologin", "libvirt-qemu"],
                       check=True)
    if not QEMU_CONF.exists():
        QEMU_CONF.parent.mkdir(parents=True, exist_ok=True)
        QEMU_CONF.write_text('user = "root"\ngroup = "root"\n')
    Path("/var/log/libvirt/qemu").mkdir(parents=True, exist_ok=True)


VIRTLOGD_SOCKET = Path("/run/libvirt/virtlogd-sock")


def _listening(path: Path) -> bool:
    """Whether a daemon accepts connections on the unix socket ``path`` (a socket file left
    by a daemon that was killed refuses them)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


def _wait_for(path: Path, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while not _listening(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{proc.args[0]} did not start: {log.read_text()[-800:]}")
        time.sleep(0.1)


class Daemon:
    """libvirtd (and virtlogd) started by this test session, restartable."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.sockets = workdir / "sock"
        self.sockets.mkdir()
        self.conf = workdir / "libvirtd.conf"
        self.conf.write_text(
            f'unix_sock_dir = "{self.sockets}"\n'
            'auth_unix_rw = "none"\nauth_unix_ro = "none"\n'
            f'log_outputs = "3:file:{workdir}/libvirtd.log"\n'
        )
        self.uri = f"qemu:///system?socket={self.sockets}/libvirt-sock"
        self.libvirtd: subprocess.Popen | None = None
        self.virtlogd: subprocess.Popen | None = None

    def start(self) -> None:
        out = open(self.workdir / "daemons.out", "ab")  # noqa: SIM115 - lives with the daemons
        if self.virtlogd is None and not _listening(VIRTLOGD_SOCKET):
            # QEMU's console log goes through virtlogd; one killed earlier left its socket.
            VIRTLOGD_SOCKET.unlink(missing_ok=True)
            self.virtlogd = subprocess.Popen(["virtlogd"], stdout=out, stderr=out)
            _wait_for(VIRTLOGD_SOCKET, self.virtlogd, self.workdir / "daemons.out")
        sock = self.sockets / "libvirt-sock"
        sock.unlink(missing_ok=True)
        self.libvirtd = subprocess.Popen(
            ["libvirtd", "-f", str(self.conf), "-p", str(self.workdir / "libvirtd.pid")],
            stdout=out, stderr=out)
        _wait_for(sock, self.libvirtd, self.workdir / "libvirtd.log")

    def stop_libvirtd(self) -> None:
        if self.libvirtd is not None and self.libvirtd.poll() is None:
            self.libvirtd.terminate()
            self.libvirtd.wait(30)

    def stop(self) -> None:
        self.stop_libvirtd()
        if self.virtlogd is not None:
            self.virtlogd.terminate()
            self.virtlogd.wait(30)


@pytest.fixture(scope="session")
def libvirtd() -> Iterator[Daemon]:
    reason = _why_not()
    if reason:
        print(f"SKIP real QEMU tests: {reason}")
        pytest.skip(reason)
    _prepare_host()
    daemon = Daemon(Path(tempfile.mkdtemp(prefix="appliance-libvirtd-")))
    daemon.start()
    yield daemon
    daemon.stop()
    shutil.rmtree(daemon.workdir, ignore_errors=True)


def domain_xml(name: str, uid: str, disk: Path, tap: str) -> str:
    # kvm if the nested KVM takes it, else TCG; no <cpu> (host-model crashes here).
    virt = "kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "qemu"
    return f"""<domain type='{virt}'>
  <name>{name}</name><uuid>{uid}</uuid>
  <memory unit='MiB'>128</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='{disk}'/><target dev='vda' bus='virtio'/></disk>
    <interface type='ethernet'><target dev='{tap}' managed='yes'/><model type='virtio'/>
    </interface>
    <memballoon model='virtio'><stats period='5'/></memballoon>
  </devices>
</domain>"""


@contextlib.contextmanager
def defined_domain(daemon: Daemon, workdir: Path) -> Iterator[libvirt.virDomain]:
    """A tiny domain, defined (not started); destroyed and undefined afterwards."""
    uid = str(uuid.uuid4())
    disk = workdir / f"{uid[:8]}.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    conn = libvirt.open(daemon.uri)
    dom = conn.defineXML(domain_xml(f"appliance-test-{uid[:8]}", uid, disk, f"tapa{uid[:8]}"))
    try:
        yield dom
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()
        conn = libvirt.open(daemon.uri)  # a fresh one: the test may have restarted libvirtd
        try:
            dom = conn.lookupByUUIDString(uid)
            if dom.isActive():
                dom.destroy()
            dom.undefine()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:  # undefined by the test
                raise
        finally:
            conn.close()


@pytest.fixture
def domain(libvirtd: Daemon, tmp_path: Path) -> Iterator[libvirt.virDomain]:
    with defined_domain(libvirtd, tmp_path) as dom:
        yield dom


class Events:
    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[PollResult] = queue.SimpleQueue()

    def wait_for(self, uid: str, **attributes: str) -> Resource:
        """The first emitted resource of ``uid`` with these attributes (QEMU sends several
        events per change, e.g. started then resumed)."""
        while True:
            for r in self.queue.get(timeout=30).resources:  # a hang guard, not a speed test
                if r.id == uid and attributes.items() <= r.attributes.items():
                    return r


def test_bulk_path_reads_cpu_memory_disk_and_network_and_events_reach_history(
    libvirtd: Daemon, domain: libvirt.virDomain
):
    p = LibvirtPollster(LibvirtSettings(uri=libvirtd.uri))
    events = Events()
    p.start_events(events.queue.put)
    uid = domain.UUIDString()
    tap = f"tapa{uid[:8]}"
    try:
        domain.create()
        events.wait_for(uid, state="running")
        settle(p, [uid])
        time.sleep(1)  # cpu_util needs a previous poll
        second = p.poll(p.targets(), time.monotonic() + 60)
        (report,) = second.reports
        assert report.ok and report.detail["path"] == "bulk", report
        meters: dict[str, set[str]] = {}
        for s in second.samples:
            meters.setdefault(s.resource.id, set()).add(s.metric_name)
        assert {"cpu", "cpu_util", "vcpus", "memory", "memory.resident", "power.state"} <= \
            meters[uid]
        assert {"disk.device.read.bytes", "disk.device.write.requests",
                "disk.device.read.latency", "disk.device.capacity",
                "disk.device.usage"} <= meters[resource_id_for(f"{uid}-vda")]
        assert {"network.incoming.bytes", "network.outgoing.packets",
                "network.incoming.packets.drop"} <= meters[resource_id_for(f"{uid}-{tap}")]
        capacity = [s.value for s in second.samples if s.metric_name == "disk.device.capacity"
                    and s.resource.id == resource_id_for(f"{uid}-vda")]
        assert capacity == [64 * 1024 * 1024]
        inst = next(s.resource for s in second.samples if s.resource.id == uid)
        assert inst.attributes["memory"] == 128 and inst.attributes["os_type"] == "hvm"

        domain.suspend()
        events.wait_for(uid, state="paused", last_event="suspended")
        domain.resume()
        events.wait_for(uid, state="running", last_event="resumed")
        # A hard reset needs no guest OS: QEMU's RESET event is libvirt's reboot event.
        domain.reset()
        events.wait_for(uid, state="running", last_event=REBOOTED)
        domain.destroy()
        events.wait_for(uid, state="shutoff", last_event="stopped")
        domain.undefine()
        ended = events.wait_for(uid, last_event="undefined")
        assert ended.ended_at is not None and ended.attributes["name"] == domain.name()
    finally:
        p.close()


def test_a_restarted_libvirtd_is_reconnected(libvirtd: Daemon, domain: libvirt.virDomain):
    p = LibvirtPollster(LibvirtSettings(uri=libvirtd.uri))
    events = Events()
    p.start_events(events.queue.put)
    uid = domain.UUIDString()
    try:
        assert p.poll(p.targets(), time.monotonic() + 60).reports[0].ok
        libvirtd.stop_libvirtd()
        down = p.poll(p.targets(), time.monotonic() + 60).reports[0]
        assert not down.ok and down.samples == 0
        libvirtd.start()
        # Without a poll, the listener re-opens the connection and subscribes again.
        deadline = time.monotonic() + 60
        while p.connection.opens < 2:
            assert time.monotonic() < deadline, "no reconnection between polls"
            time.sleep(0.2)
        other = libvirt.open(libvirtd.uri)
        try:
            other.lookupByUUIDString(uid).create()
        finally:
            other.close()
        events.wait_for(uid, state="running", last_event="started")
        report = p.poll(p.targets(), time.monotonic() + 60).reports[0]
        assert report.ok and report.detail["domains"] >= 1 and p.connection.opens == 2
    finally:
        p.close()


def settle(p: LibvirtPollster, uuids: list[str]) -> None:
    """Poll until every domain is read in full: right after a start libvirt still runs jobs
    on it (balloon period, ...), during which NOWAIT reads give state and CPU only."""
    deadline = time.monotonic() + 60
    while True:
        result = p.poll(p.targets(), time.monotonic() + 30)
        full = {s.resource.id for s in result.samples if s.metric_name == "memory.resident"}
        if set(uuids) <= full:
            return
        assert time.monotonic() < deadline, f"domains never fully readable: {result.reports}"
        time.sleep(0.5)


def test_a_hung_qemu_does_not_stall_the_others(libvirtd: Daemon, tmp_path: Path):
    """SIGSTOP freezes one QEMU, so its monitor stops answering, as a wedged one does. The
    bulk call then hangs; the poll gives it up and reads domain by domain: the healthy
    domain in full; the frozen one either with what needs no monitor (NOWAIT skips the rest
    while the hung call holds its job) or not at all, reported (when its own read hangs too,
    which depends on where libvirt's bulk call is stuck). The next poll does not wait for the
    bulk call again.
    """
    with defined_domain(libvirtd, tmp_path) as hung, defined_domain(libvirtd, tmp_path) as ok:
        hung.create()
        ok.create()
        pid = int(Path(f"/run/libvirt/qemu/{hung.name()}.pid").read_text())
        # A generous limit: the machine may be busy, and a healthy monitor must not miss it.
        p = LibvirtPollster(LibvirtSettings(uri=libvirtd.uri, domain_timeout=10,
                                            lifecycle_events=False))
        settle(p, [hung.UUIDString(), ok.UUIDString()])
        os.kill(pid, signal.SIGSTOP)
        try:
            first = p.poll(p.targets(), time.monotonic() + 60)
            second = p.poll(p.targets(), time.monotonic() + 60)
        finally:
            os.kill(pid, signal.SIGCONT)
            p.close()
        ok_id, hung_id, hung_name = ok.UUIDString(), hung.UUIDString(), hung.name()
    for result in (first, second):
        (report,) = result.reports
        assert report.detail["path"] == "per-domain (bulk call hung)", report
        assert report.detail["domains"] == 2 and set(report.detail["failed"]) <= {hung_name}
        meters: dict[str, set[str]] = {}
        for s in result.samples:
            meters.setdefault(s.resource.id, set()).add(s.metric_name)
        assert {"cpu", "memory.resident", "power.state"} <= meters[ok_id]
        assert "disk.device.read.bytes" in meters[resource_id_for(f"{ok_id}-vda")]
        assert resource_id_for(f"{hung_id}-vda") not in meters
        if report.detail["failed"]:
            assert report.detail["failed"][hung_name] in (
                "no answer within 10s", "previous call still running")
            assert hung_id not in meters
        else:
            assert {"cpu", "power.state"} <= meters[hung_id]
