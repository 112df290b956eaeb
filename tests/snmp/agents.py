"""Real SNMP agents for tests and benchmarks: net-snmp's snmpd, snmpsim, a delaying proxy.

Every agent listens on a free loopback UDP port from the OS and is stopped by its own pid.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from appliance.model import PollResult
from appliance.pollsters.snmp import SnmpPollster

VENV_BIN = Path(sys.executable).parent


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_answering(port: int, community: str, proc: subprocess.Popen, log: Path) -> None:
    """Until the agent answers a GET of sysDescr (net-snmp's snmpget as the probe)."""
    env = {**os.environ, "MIBS": ""}
    cmd = ["snmpget", "-v2c", "-c", community, "-t", "0.3", "-r", "0", "-On"]
    for _ in range(100):
        if proc.poll() is not None:
            raise RuntimeError(f"agent exited: {log.read_text(errors='replace')[-2000:]}")
        probe = subprocess.run(
            [*cmd, f"127.0.0.1:{port}", "1.3.6.1.2.1.1.1.0"], env=env, capture_output=True
        )
        if probe.returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"agent on port {port} never answered: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def snmpd(workdir: Path, community: str, v3_users: list[str]) -> Iterator[int]:
    """net-snmp snmpd on a free port; ``v3_users`` are snmpd.conf ``createUser`` arguments
    (``"name SHA authpass AES privpass"``), each granted read access at its level."""
    port = free_udp_port()
    persist = workdir / "persist"
    persist.mkdir(parents=True, exist_ok=True)
    lines = [
        f"agentAddress udp:127.0.0.1:{port}",
        f"rocommunity {community} 127.0.0.1",
        "includeAllDisks 10%",
        "sysContact ops@example.net",
    ]
    for user in v3_users:
        name, *rest = user.split()
        level = "priv" if len(rest) > 2 else "auth"
        lines += [f"createUser {user}", f"rouser {name} {level}"]
    conf = workdir / "snmpd.conf"
    conf.write_text("\n".join(lines) + "\n")
    log = workdir / "snmpd.log"
    env = {**os.environ, "MIBS": "", "SNMP_PERSISTENT_DIR": str(persist)}
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["snmpd", "-f", "-Lo", "-C", "-c", str(conf), "-p", str(workdir / "snmpd.pid")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_answering(port, community, proc, log)
        yield port
    finally:
        _stop(proc)


@dataclass(frozen=True)
class Simulator:
    """A running snmpsim: its port and the directory of ``<community>.snmprec`` files."""

    port: int
    data_dir: Path

    def rewrite(self, community: str, text: str) -> None:
        """Replace a recording atomically (snmpsim must never index a half-written file).

        snmpsim re-reads a file whose mtime, in whole seconds, changed, and rebuilds its
        index only when the file is newer than the index: so the new file must carry a
        later second than both, which a short wait guarantees.
        """
        path = self.data_dir / f"{community}.snmprec"
        newest = max(p.stat().st_mtime for p in self.data_dir.parent.rglob("*") if p.is_file())
        while int(time.time()) <= int(newest):
            time.sleep(0.05)
        fresh = path.with_suffix(".new")
        fresh.write_text(text, encoding="ascii")
        fresh.chmod(0o644)
        fresh.replace(path)


@contextmanager
def snmpsim(data: dict[str, str], probe_community: str) -> Iterator[Simulator]:
    """snmpsim serving ``{community: snmprec text}`` on a free port.

    As root it drops to nobody, so its data and cache live in a world-readable mkdtemp
    (pytest's tmp_path is private to root).
    """
    port = free_udp_port()
    top = Path(tempfile.mkdtemp(prefix="snmpsim-"))
    try:
        top.chmod(0o755)
        data_dir, cache_dir = top / "data", top / "cache"
        data_dir.mkdir(mode=0o755)
        cache_dir.mkdir(mode=0o777)
        cache_dir.chmod(0o777)
        for community, text in data.items():
            path = data_dir / f"{community}.snmprec"
            path.write_text(text, encoding="ascii")
            path.chmod(0o644)
        cmd = [
            str(VENV_BIN / "snmpsim-command-responder"),
            f"--data-dir={data_dir}",
            f"--cache-dir={cache_dir}",
            f"--agent-udpv4-endpoint=127.0.0.1:{port}",
            "--logging-method=stdout",
            "--log-level=error",
        ]
        if os.geteuid() == 0:
            cmd += ["--process-user=nobody", "--process-group=nogroup"]
        log = top / "snmpsim.log"
        with log.open("w") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_answering(port, probe_community, proc, log)
            yield Simulator(port, data_dir)
        finally:
            _stop(proc)
    finally:
        shutil.rmtree(top, ignore_errors=True)


@contextmanager
def udp_proxy(
    upstream_port: int,
    delay: float = 0.0,
    max_reply_bytes: int | None = None,
    garble: bool = False,
) -> Iterator[int]:
    """A UDP relay in front of an agent: holds every reply for ``delay`` seconds (a slow
    agent), drops replies over ``max_reply_bytes`` (a path that loses large datagrams,
    the usual reason big GETBULK responses never arrive), or with ``garble`` flips every
    byte of each reply after the first (an agent that answers garbage).

    One thread per request keeps the relay itself from serialising the delays.
    """
    front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    front.bind(("127.0.0.1", 0))
    front.settimeout(0.2)
    stop = threading.Event()

    def relay(packet: bytes, client: tuple[str, int]) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as back:
            back.settimeout(5)
            back.sendto(packet, ("127.0.0.1", upstream_port))
            try:
                reply = back.recv(65535)
            except TimeoutError:
                return
            too_big = max_reply_bytes is not None and len(reply) > max_reply_bytes
            if garble:
                reply = reply[:1] + bytes(b ^ 0xFF for b in reply[1:])
            if not stop.wait(delay) and not too_big:
                front.sendto(reply, client)

    def serve() -> None:
        while not stop.is_set():
            try:
                packet, client = front.recvfrom(65535)
            except TimeoutError:
                continue
            threading.Thread(target=relay, args=(packet, client), daemon=True).start()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        yield front.getsockname()[1]
    finally:
        stop.set()
        server.join()
        front.close()


def snmp_set(port: int, community: str, values: dict[str, object]) -> None:
    """SET values on an agent (snmpsim ``writecache`` records) with pysnmp: net-snmp's
    snmpset refuses Counter32, which is exactly what the wrap tests need to set."""
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        ContextData,
        SnmpEngine,
        UdpTransportTarget,
        set_cmd,
    )

    async def run() -> None:
        engine = SnmpEngine()
        try:
            target = await UdpTransportTarget.create(("127.0.0.1", port), timeout=2, retries=1)
            indication, status, _, _ = await set_cmd(
                engine,
                CommunityData(community),
                target,
                ContextData(),
                *values.items(),
                lookupMib=False,
            )
            if indication or status:
                raise RuntimeError(f"SET failed: {indication or status}")
        finally:
            engine.close_dispatcher()

    asyncio.run(run())


def poll(pollster: SnmpPollster, seconds: float = 20) -> PollResult:
    """One poll of every target the pollster knows, with a deadline ``seconds`` away."""
    return pollster.poll(pollster.targets(), time.monotonic() + seconds)


def poll_and_close(pollster: SnmpPollster, seconds: float = 20) -> PollResult:
    """One poll, then release the pollster's engines and loop whatever happened."""
    try:
        return poll(pollster, seconds)
    finally:
        pollster.close()
