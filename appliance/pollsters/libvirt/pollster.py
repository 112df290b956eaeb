"""The libvirt pollster: reader output -> samples, resources and a health report.

It keeps the little state that spans polls: the previous CPU time of each domain (for
``cpu_util``), the instances seen last time (so a domain that disappears gets ``ended_at``)
and each domain's latest lifecycle event (an attribute, so a reboot, which changes no other
attribute, still writes a history revision).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Sequence

import libvirt

from appliance.config import LibvirtSettings
from appliance.model import PollResult, Resource, TargetReport
from appliance.pollsters.base import Emit, Pollster
from appliance.pollsters.deadline import DeadlineRunner
from appliance.pollsters.libvirt.connection import (
    Connection,
    Disconnected,
    ensure_event_loop,
    quiet_libvirt_errors,
)
from appliance.pollsters.libvirt.events import STATE_AFTER, DomainEvent, LifecycleListener
from appliance.pollsters.libvirt.inspector import BulkReadError, InstanceStats, LibvirtReader
from appliance.pollsters.libvirt.meters import instance_resource, instance_samples

log = logging.getLogger(__name__)

UNDEFINED = "undefined"


def cpu_util(prev: tuple[int, float] | None, cpu_time: int, now: float, vcpus: int) -> float | None:
    """Percent of the domain's vCPUs used since ``prev`` (cpu ns, monotonic s), if known."""
    if prev is None or vcpus <= 0:
        return None
    d_cpu, d_t = cpu_time - prev[0], now - prev[1]
    if d_cpu < 0 or d_t <= 0:
        return None  # the domain restarted: its counter began again
    return 100.0 * d_cpu / (d_t * 1e9 * vcpus)


class LibvirtPollster(Pollster):
    source = "libvirt"

    def __init__(self, settings: LibvirtSettings) -> None:
        quiet_libvirt_errors()
        if settings.lifecycle_events:
            ensure_event_loop()  # must precede the open for events and keepalives to flow
        self.settings = settings
        self.connection = Connection(settings.uri, keepalive=settings.lifecycle_events)
        self.reader = LibvirtReader(self.connection, settings.domain_timeout, settings.workers)
        self._lock = threading.Lock()
        self._cpu: dict[str, tuple[int, float]] = {}
        self._known: dict[str, Resource] = {}
        self._last_event: dict[str, str] = {}
        self._listener: LifecycleListener | None = None
        self._emit: Emit | None = None
        self._event_runner = DeadlineRunner(1, "libvirt-event-read")

    def targets(self) -> Sequence[str]:
        return [self.settings.uri]

    def poll(self, targets: Sequence[str], deadline: float) -> PollResult:
        result = PollResult()
        if self.settings.uri not in targets:
            return result
        started, t0 = time.time(), time.monotonic()
        report = TargetReport(self.source, self.settings.uri, started, 0.0)
        result.reports.append(report)
        try:
            read = self.reader.read(deadline)
        except (Disconnected, BulkReadError, libvirt.libvirtError) as exc:
            report.error = str(exc)
            report.duration = time.monotonic() - t0
            return result
        now, ts = time.monotonic(), time.time()
        with self._lock:
            for inst in read.instances:
                self._derive_cpu_util(inst, now)
                resource = self._instance_resource(inst, read.host)
                self._known[inst.uuid] = resource
                result.samples += instance_samples(inst, resource, ts)
            for uuid in set(self._known) - read.present:
                result.resources.append(self._end(uuid, ts))
        report.samples = len(result.samples)
        report.duration = time.monotonic() - t0
        report.detail = {"path": read.path, "domains": len(read.present),
                         "read": len(read.instances), "failed": read.failed}
        if read.failed:
            names = sorted(read.failed)
            report.error = f"{len(names)} domain(s) not read: " + ", ".join(
                f"{n} ({read.failed[n]})" for n in names[:5]) + (" ..." if len(names) > 5 else "")
            log.warning("libvirt_poll_partial uri=%s failed=%d first=%s",
                        self.settings.uri, len(names), names[0])
        return result

    def _derive_cpu_util(self, inst: InstanceStats, now: float) -> None:
        if inst.cpu_time is None:
            self._cpu.pop(inst.uuid, None)
            return
        inst.cpu_util = cpu_util(self._cpu.get(inst.uuid), inst.cpu_time, now, inst.vcpus or 0)
        self._cpu[inst.uuid] = (inst.cpu_time, now)

    def _instance_resource(self, inst: InstanceStats, host: str) -> Resource:
        resource = instance_resource(inst, host)
        if inst.uuid in self._last_event:
            resource.attributes["last_event"] = self._last_event[inst.uuid]
        return resource

    def _end(self, uuid: str, ts: float) -> Resource:
        """Forget a domain that is gone; return its last resource with ``ended_at``."""
        resource = self._known.pop(uuid, None) or Resource(uuid, "instance", uuid, {"uuid": uuid})
        self._cpu.pop(uuid, None)
        self._last_event.pop(uuid, None)
        self.reader.forget(uuid)
        attributes = {**resource.attributes, "last_event": UNDEFINED}
        return dataclasses.replace(resource, attributes=attributes, ended_at=ts)

    # --- lifecycle events --------------------------------------------------------------------

    def start_events(self, emit: Emit) -> None:
        if not self.settings.lifecycle_events or self._listener is not None:
            return
        self._emit = emit
        self._listener = LifecycleListener(self.connection, self._on_event)
        try:
            self.connection.get()  # subscribe now; after an outage, on the next open
        except Disconnected as exc:
            log.warning("libvirt_events_waiting uri=%s reason=%s", self.settings.uri, exc)

    def _on_event(self, event: DomainEvent) -> None:
        resource = self._event_resource(event)
        if resource is not None and self._emit is not None:
            self._emit(PollResult(resources=[resource]))

    def _event_resource(self, event: DomainEvent) -> Resource | None:
        if event.name == UNDEFINED:
            with self._lock:
                return self._end(event.uuid, event.timestamp)
        self.reader.forget(event.uuid)  # a "defined" event may carry a new definition
        timeout = self.settings.domain_timeout
        out = self._event_runner.run(
            {event.uuid: lambda: self.reader.describe(event.domain, event.uuid)},
            timeout, time.monotonic() + timeout,
        )[event.uuid]
        with self._lock:
            self._last_event[event.uuid] = event.name
            if out.ok and out.value is not None:
                resource = self._instance_resource(out.value, self.connection.hostname)
            elif event.uuid in self._known:
                # Gone or hung since the event: the last known attributes still hold; a
                # domain that is really gone ends at the next poll or its undefine event.
                resource = dataclasses.replace(self._known[event.uuid])
                resource.attributes = {**resource.attributes, "last_event": event.name}
            else:
                log.warning("libvirt_event_read_failed uuid=%s event=%s error=%s",
                            event.uuid, event.name, out.error)
                return None
            if event.name in STATE_AFTER:
                resource.attributes["state"] = STATE_AFTER[event.name]
            self._known[event.uuid] = resource
            return resource

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self.connection.close()
