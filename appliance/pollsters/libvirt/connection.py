"""The libvirt connection: open, check, re-open with backoff, quiet error printing.

libvirtd restarts (package upgrades, crashes) and the pollster must ride through them: every
poll asks :meth:`Connection.get`, which hands back a live connection or raises
:class:`Disconnected` without blocking while a backoff runs, so a dead daemon costs one
failed open per backoff step, not one per poll.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

import libvirt

log = logging.getLogger(__name__)

_event_loop_lock = threading.Lock()
_event_loop_started = False


class Disconnected(Exception):
    """No live connection now; ``retry_in`` seconds until the next attempt."""

    def __init__(self, reason: str, retry_in: float):
        super().__init__(f"{reason} (next attempt in {retry_in:.0f}s)")
        self.reason = reason
        self.retry_in = retry_in


def _log_libvirt_error(_ctx: object, err: tuple) -> None:
    # libvirt's default handler prints every error to stderr, including expected ones (a
    # domain undefined between list and read). Callers report what matters once per poll;
    # here each error is only a debug line with its fields.
    code, domain, message = err[0], err[1], err[2]
    log.debug("libvirt_error code=%s domain=%s message=%r", code, domain, message)


def quiet_libvirt_errors() -> None:
    """Replace libvirt's stderr printing with debug log lines (process-wide, idempotent)."""
    libvirt.registerErrorHandler(_log_libvirt_error, None)


def ensure_event_loop() -> None:
    """Register libvirt's default event loop and run it on a daemon thread, once a process.

    It must be registered before a connection is opened for that connection to deliver
    domain events and keepalives.
    """
    global _event_loop_started
    with _event_loop_lock:
        if _event_loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()
        threading.Thread(target=_run_event_loop, name="libvirt-events", daemon=True).start()
        _event_loop_started = True


def _run_event_loop() -> None:
    while True:
        if libvirt.virEventRunDefaultImpl() < 0:
            log.warning("libvirt event loop iteration failed")
            time.sleep(1)


class Connection:
    """One libvirt connection that re-opens itself with exponential backoff."""

    def __init__(
        self,
        uri: str,
        keepalive: bool = False,
        min_backoff: float = 1.0,
        max_backoff: float = 300.0,
    ) -> None:
        self.uri = uri
        self._keepalive = keepalive
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._backoff = 0.0
        self._next_attempt = 0.0
        self._conn: libvirt.virConnect | None = None
        self._lock = threading.Lock()
        self._on_open: list[Callable[[libvirt.virConnect], None]] = []
        self.hostname = ""
        self.opens = 0

    def on_open(self, hook: Callable[[libvirt.virConnect], None]) -> None:
        """Call ``hook(conn)`` after every successful (re)open (event registration)."""
        self._on_open.append(hook)
        if self._conn is not None:
            hook(self._conn)

    def get(self) -> libvirt.virConnect:
        """A live connection, re-opened if needed; :class:`Disconnected` during backoff."""
        with self._lock:
            conn = self._conn
            if conn is not None and self._alive(conn):
                return conn
            if conn is not None:
                self._drop_locked("connection lost")
            now = time.monotonic()
            if now < self._next_attempt:
                raise Disconnected("libvirt not connected", self._next_attempt - now)
            try:
                conn = libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                self._backoff = min(self._max_backoff, max(self._min_backoff, self._backoff * 2))
                self._next_attempt = now + self._backoff
                log.warning("libvirt_open_failed uri=%s retry_in=%.0fs error=%r",
                            self.uri, self._backoff, exc.get_error_message())
                raise Disconnected(f"cannot open {self.uri}", self._backoff) from None
            self._backoff = 0.0
            self._conn = conn
            self.opens += 1
            self.hostname = conn.getHostname()
            if self._keepalive:
                # Keepalives need the event loop; local drivers answer "unsupported", fine.
                with contextlib.suppress(libvirt.libvirtError):
                    conn.setKeepAlive(5, 3)
            log.info("libvirt_connected uri=%s host=%s", self.uri, self.hostname)
            for hook in self._on_open:
                hook(conn)
            return conn

    def drop(self, reason: str, level: int = logging.WARNING) -> None:
        """Forget the connection after an error that looks like the daemon went away."""
        with self._lock:
            self._drop_locked(reason, level)

    def _drop_locked(self, reason: str, level: int = logging.WARNING) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        log.log(level, "libvirt_disconnected uri=%s reason=%s", self.uri, reason)
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()

    @staticmethod
    def _alive(conn: libvirt.virConnect) -> bool:
        try:
            return conn.isAlive() == 1
        except libvirt.libvirtError:
            return False

    def alive(self) -> bool:
        """Whether the current connection (if any) still answers."""
        conn = self._conn
        return conn is not None and self._alive(conn)

    def close(self) -> None:
        self.drop("closed", logging.INFO)
