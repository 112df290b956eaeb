"""Real distributed engines from Debian's packages, each on a free port in a temp dir.

Redis, etcd and ZooKeeper (tooz backends), VictoriaMetrics (a remote-write store) and Prometheus (a
scraper and remote-write sender). Each starts as the test's own child and is stopped at
teardown; none is assumed to run already.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import requests

from tests.conftest import free_port, wait_for


class Engine:
    """One engine process: its argv, where it logs, how to tell it is ready."""

    def __init__(self, name: str, argv: list[str], workdir: Path, ready_url: str | None = None):
        self.name, self.argv, self.workdir, self.ready_url = name, argv, workdir, ready_url
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / f"{name}.log"

    def start(self) -> Engine:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(self.argv, cwd=self.workdir, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self.ready, timeout=30, what=f"{self.name} to answer")
        return self

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited: {self.log_path.read_text()[-2000:]}")
        if self.ready_url is None:
            return True
        try:
            return requests.get(self.ready_url, timeout=2).ok
        except requests.RequestException:
            return False

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def redis(workdir: Path) -> tuple[Engine, str]:
    """redis-server without persistence; returns it and its tooz URL."""
    port = free_port()
    engine = Engine("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                    workdir)
    engine.start()
    wait_for(lambda: _redis_ping(port), what="redis PING")
    return engine, f"redis://127.0.0.1:{port}"


def _redis_ping(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def etcd(workdir: Path) -> tuple[Engine, str]:
    """A one-node etcd; returns it and its tooz URL (v3 gRPC gateway over HTTP)."""
    client, peer = free_port(), free_port()
    url = f"http://127.0.0.1:{client}"
    engine = Engine("etcd", [
        "etcd", "--name", "t", "--data-dir", str(workdir / "etcd-data"),
        "--listen-client-urls", url, "--advertise-client-urls", url,
        "--listen-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-cluster", f"t=http://127.0.0.1:{peer}",
    ], workdir, ready_url=f"{url}/health")
    engine.start()
    return engine, f"etcd3+http://127.0.0.1:{client}"


def zookeeper(workdir: Path) -> tuple[Engine, str]:
    """A standalone ZooKeeper from Debian's ``zookeeper`` package; returns it and its tooz URL.

    Started as ``ZooKeeperServerMain`` (standalone, no quorum) under Debian's java with a
    zoo.cfg of our own: the package's ``zkServer.sh`` and ``zookeeperd`` want /etc and
    /var/lib. ``tickTime`` 500 ms lets a client ask for the 3-s sessions the tests use (the
    server grants 2 to 20 ticks), so a SIGKILLed member's ephemeral znodes go within seconds.
    The AdminServer (Jetty on 0.0.0.0:8080 by default) is off: tests bind only loopback.
    """
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "zoo.cfg"
    conf.write_text("\n".join([
        "tickTime=500", f"dataDir={workdir / 'zk-data'}", f"clientPort={port}",
        "clientPortAddress=127.0.0.1", "admin.enableServer=false",
        "4lw.commands.whitelist=ruok", "maxClientCnxns=0", ""]))
    # zookeeper.jar's manifest lists its dependencies; slf4j-simple (from libslf4j-java, a
    # dependency of the package) sends the server's log to stderr, i.e. to zookeeper.log.
    classpath = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
    engine = Engine("zookeeper", [
        "java", "-Xmx256m", "-XX:+UseSerialGC", "-cp", classpath,
        "org.apache.zookeeper.server.ZooKeeperServerMain", str(conf),
    ], workdir)
    engine.start()
    wait_for(lambda: _four_letters(port, b"ruok") == b"imok", timeout=30,
             what="zookeeper to answer ruok")
    return engine, f"zookeeper://127.0.0.1:{port}"


def _four_letters(port: int, word: bytes) -> bytes:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(word)
            return s.recv(16)
    except OSError:
        return b""


def victoria_metrics(workdir: Path) -> tuple[Engine, str]:
    """VictoriaMetrics; returns it and its base URL (remote write at /api/v1/write)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    engine = Engine("victoria-metrics", [
        "victoria-metrics", f"-httpListenAddr=127.0.0.1:{port}",
        f"-storageDataPath={workdir / 'vm-data'}", "-retentionPeriod=1y",
        "-search.latencyOffset=0s", "-search.disableCache",
    ], workdir, ready_url=f"{url}/health")
    engine.start()
    return engine, url


def prometheus(workdir: Path, config: dict) -> tuple[Engine, str]:
    """A Prometheus server with ``config`` (scrape + remote_write); returns it and its URL."""
    import yaml

    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{port}"
    engine = Engine("prometheus", [
        "prometheus", f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'prom-data'}", f"--web.listen-address=127.0.0.1:{port}",
    ], workdir, ready_url=f"{url}/-/ready")
    engine.start()
    return engine, url
