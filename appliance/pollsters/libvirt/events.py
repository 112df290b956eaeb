"""Domain lifecycle events: changes reach the index within seconds, not at the next poll.

libvirt calls back on its event-loop thread; the callback only queues the event, and a
worker thread of ours reads the domain (under a time limit) and hands the result on. A slow
read thus never holds up libvirt's event loop, which also carries keepalives.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import libvirt

from appliance.pollsters.libvirt.connection import Connection, Disconnected

log = logging.getLogger(__name__)

EVENT_NAMES = {
    libvirt.VIR_DOMAIN_EVENT_DEFINED: "defined",
    libvirt.VIR_DOMAIN_EVENT_UNDEFINED: "undefined",
    libvirt.VIR_DOMAIN_EVENT_STARTED: "started",
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: "suspended",
    libvirt.VIR_DOMAIN_EVENT_RESUMED: "resumed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED: "stopped",
    libvirt.VIR_DOMAIN_EVENT_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: "pmsuspended",
    libvirt.VIR_DOMAIN_EVENT_CRASHED: "crashed",
}
WATCH_INTERVAL = 5.0  # seconds without events after which the connection is checked
REBOOTED = "rebooted"  # its own event id in libvirt, not a lifecycle event

# The state each event leaves the domain in. Events are handled a moment after they happen,
# when the domain may have moved on (or be gone): the event, not a fresh read, says which
# state this revision records.
STATE_AFTER = {
    "started": "running",
    "resumed": "running",
    REBOOTED: "running",
    "suspended": "paused",
    "stopped": "shutoff",
    "shutdown": "shutdown",
    "pmsuspended": "suspended",
    "crashed": "crashed",
}


@dataclass(slots=True)
class DomainEvent:
    domain: libvirt.virDomain
    uuid: str
    name: str  # one of EVENT_NAMES' values or REBOOTED
    timestamp: float


class LifecycleListener:
    """Subscribes on every (re)open of ``connection`` and feeds ``handle`` one event at a time."""

    def __init__(self, connection: Connection, handle: Callable[[DomainEvent], None]) -> None:
        self._handle = handle
        self._connection = connection
        self._queue: queue.SimpleQueue[DomainEvent | None] = queue.SimpleQueue()
        self._callbacks: list[tuple[libvirt.virConnect, int]] = []
        self._thread = threading.Thread(target=self._work, name="libvirt-lifecycle", daemon=True)
        self._thread.start()
        connection.on_open(self._subscribe)

    def _subscribe(self, conn: libvirt.virConnect) -> None:
        self._callbacks = [
            (conn, conn.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None)),
            (conn, conn.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_REBOOT, self._on_reboot, None)),
        ]

    def _on_lifecycle(self, _conn, dom, event: int, _detail: int, _opaque) -> None:
        self._put(dom, EVENT_NAMES.get(event, f"event-{event}"))

    def _on_reboot(self, _conn, dom, _opaque) -> None:
        self._put(dom, REBOOTED)

    def _put(self, dom: libvirt.virDomain, name: str) -> None:
        # Runs on libvirt's event loop: UUIDString() is local to the object, no RPC.
        self._queue.put(DomainEvent(dom, dom.UUIDString(), name, time.time()))

    def _work(self) -> None:
        while True:
            try:
                event = self._queue.get(timeout=WATCH_INTERVAL)
            except queue.Empty:
                self._watch()
                continue
            if event is None:
                return
            try:
                self._handle(event)
            except Exception:  # one bad event must not end the listener
                log.exception("libvirt_event_failed uuid=%s event=%s", event.uuid, event.name)

    def _watch(self) -> None:
        """Re-open a lost connection between polls, so events resume within seconds of a
        libvirtd restart rather than at the next poll (the open re-subscribes)."""
        with contextlib.suppress(Disconnected):
            self._connection.get()

    def close(self) -> None:
        for conn, cb_id in self._callbacks:
            with contextlib.suppress(libvirt.libvirtError):  # the connection may be gone
                conn.domainEventDeregisterAny(cb_id)
        self._callbacks = []
        self._queue.put(None)
        self._thread.join(timeout=2)  # not forever: it may sit in a hung libvirt call
