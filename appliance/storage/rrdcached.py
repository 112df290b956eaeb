"""A client for rrdcached's text protocol over its UNIX socket.

librrd's own client (``--daemon`` on rrdtool calls) sends one command per call; this one
sends whole batches (``BATCH`` ... ``.``) and reads a per-command error list, which is what
makes the write path cost little more than rrdcached itself.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Sequence
from pathlib import Path

from appliance.storage.errors import StoreUnavailable


class RrdcachedError(StoreUnavailable):
    """rrdcached is unreachable or answered something this client does not understand."""


class RrdcachedClient:
    """One persistent connection to rrdcached, reconnected on failure, safe across threads."""

    def __init__(self, socket_path: Path | str, timeout: float = 30.0):
        self.socket_path = str(socket_path)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._file = None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._disconnect()

    def _disconnect(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = self._file = None

    def _connect(self):
        if self._file is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.socket_path)
            except OSError as exc:
                sock.close()
                raise RrdcachedError(
                    f"cannot reach rrdcached at {self.socket_path}: {exc}"
                ) from exc
            self._sock, self._file = sock, sock.makefile("rwb")
        return self._file

    def _readline(self, f) -> str:
        line = f.readline()
        if not line:
            raise RrdcachedError("rrdcached closed the connection")
        return line.decode("utf-8", "replace").rstrip("\n")

    def _call(self, fn):
        """Run ``fn(file)`` on the connection; on a broken connection reconnect once.

        A reset connection, or an answer that does not parse (rrdcached going down
        mid-answer), is reported as unreachable too: the caller answers 503.
        """
        with self._lock:
            for attempt in (1, 2):
                try:
                    return fn(self._connect())
                except (OSError, RrdcachedError, ValueError) as exc:
                    self._disconnect()
                    if attempt == 2:
                        if isinstance(exc, RrdcachedError):
                            raise
                        raise RrdcachedError(f"rrdcached connection lost: {exc!r}") from exc
        raise AssertionError("unreachable")

    def command(self, line: str) -> tuple[int, str, list[str]]:
        """Send one command; return (status, message, extra lines)."""

        def run(f):
            f.write(line.encode() + b"\n")
            f.flush()
            head = self._readline(f)
            status_text, _, message = head.partition(" ")
            status = int(status_text)
            extra = [self._readline(f) for _ in range(status)] if status > 0 else []
            return status, message, extra

        return self._call(run)

    def batch(self, commands: Sequence[str]) -> dict[int, str]:
        """Send commands in one BATCH; return ``{command index: error}`` for those that failed."""
        if not commands:
            return {}
        return self.send_batch(("\n".join(commands) + "\n").encode())

    def send_batch(self, payload: bytes) -> dict[int, str]:
        """:meth:`batch` for commands already joined (each ending in a newline) and encoded.

        The write path logs the same bytes to its write-ahead log, so they are built once.
        """

        def run(f):
            f.write(b"BATCH\n")
            f.flush()
            head = self._readline(f)
            if not head.startswith("0 "):
                raise RrdcachedError(f"rrdcached refused BATCH: {head}")
            f.write(payload)
            f.write(b".\n")
            f.flush()
            head = self._readline(f)
            count = int(head.partition(" ")[0])
            errors = {}
            for _ in range(count):
                num, _, msg = self._readline(f).partition(" ")
                errors[int(num) - 1] = msg
            return errors

        return self._call(run)

    def flush_all_of(self, relpaths: Sequence[str]) -> None:
        """FLUSH each file in one BATCH sent with its commands: one round trip, not two.

        :meth:`send_batch` waits for rrdcached's go-ahead before sending a write batch, so
        that a refused BATCH never has its updates run one by one. A FLUSH run alone is
        harmless, so here the go-ahead is not waited for; a refusal (answers now out of
        step) drops the connection and is reported like any other rrdcached failure.
        Errors of single FLUSHes (a file with no measure yet) are ignored.
        """
        if not relpaths:
            return
        payload = b"BATCH\n" + "".join(f"FLUSH {p}\n" for p in relpaths).encode() + b".\n"

        def run(f):
            f.write(payload)
            f.flush()
            head = self._readline(f)
            if not head.startswith("0 "):
                raise RrdcachedError(f"rrdcached refused BATCH: {head}")
            count = int(self._readline(f).partition(" ")[0])
            for _ in range(count):
                self._readline(f)

        self._call(run)

    def flush(self, relpath: str) -> None:
        """Make rrdcached write a file's pending values now (reads see every acked write)."""
        self.command(f"FLUSH {relpath}")

    def stats(self) -> dict[str, int]:
        _, _, lines = self.command("STATS")
        out = {}
        for line in lines:
            key, _, value = line.partition(":")
            if value.strip().lstrip("-").isdigit():
                out[key.strip()] = int(value)
        return out
