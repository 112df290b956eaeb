"""The sensors pollster: lm-sensors where it knows a chip, raw hwmon elsewhere, thermal zones.

Every chip is read on its own thread under ``chip_timeout`` (a chip behind a slow SMBus or an
ACPI method that sleeps must not stall the others), and gets its own health report.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Sequence

from appliance.config import SensorsSettings, matches_any
from appliance.model import PollResult, Resource, Sample, TargetReport
from appliance.pollsters.base import Pollster
from appliance.pollsters.deadline import DeadlineRunner, Outcome
from appliance.pollsters.sensors import hwmon, lmsensors, thermal
from appliance.pollsters.sensors.meters import SENSOR_METERS
from appliance.pollsters.sensors.reading import ChipReading, SensorReading

log = logging.getLogger(__name__)

LM_SENSORS = "lm-sensors"


def sensor_resource(reading: SensorReading, source: str, host: str) -> Resource:
    """``sensor://host/chip/feature``: the key an SNMP LM-SENSORS poll of this host shares."""
    return Resource.from_key(
        "sensor",
        f"sensor://{host}/{reading.chip}/{reading.feature}",
        {"chip": reading.chip, "feature": reading.feature, "label": reading.label,
         "host": host, "source": source, **reading.limits},
    )


def samples_for(chip: ChipReading, host: str, timestamp: float) -> list[Sample]:
    out = []
    for r in chip.readings:
        meter = SENSOR_METERS[r.kind]
        out.append(Sample(sensor_resource(r, chip.source, host), meter.name, meter.unit,
                          meter.kind, r.value, timestamp))
    return out


class SensorsPollster(Pollster):
    source = "sensors"

    def __init__(self, settings: SensorsSettings, hostname: str | None = None) -> None:
        self.settings = settings
        self.host = hostname or socket.gethostname()
        self._runner = DeadlineRunner(4, "sensors-read")
        self._lm_note = ""  # last reason lm-sensors was not used, logged once per change

    def _wanted(self, prefix: str, chip: str) -> bool:
        include, exclude = self.settings.include_chips, self.settings.exclude_chips
        names = (prefix, chip)
        if include and not any(matches_any(n, include) for n in names):
            return False
        return not any(matches_any(n, exclude) for n in names)

    def poll(self, targets: Sequence[str], deadline: float) -> PollResult:
        result = PollResult()
        if self.source not in targets:
            return result
        timeout = self.settings.chip_timeout
        known = self._lm_sensors(result, deadline)
        calls: dict[str, Callable[[], ChipReading]] = {}
        for chip in hwmon.discover(self.settings.hwmon_root):
            if chip.chip not in known and self._wanted(chip.prefix, chip.chip):
                calls[chip.key] = lambda c=chip: hwmon.read_chip(c)
        for zone in thermal.discover(self.settings.thermal_root):
            if self._wanted(zone.type, zone.key):
                calls[zone.key] = lambda z=zone: thermal.read_zone(z)
        outcomes = self._runner.run(calls, timeout, deadline)
        for key, out in sorted(outcomes.items()):
            self._add(result, key, out)
        return result

    def _lm_sensors(self, result: PollResult, deadline: float) -> set[str]:
        """Read ``sensors -j`` into ``result``; return the chips it covered."""
        if not self.settings.lm_sensors:
            return set()
        started = time.time()
        out = self._runner.run({LM_SENSORS: lambda: lmsensors.read(
            self.settings.lm_sensors_command)}, self.settings.chip_timeout, deadline)[LM_SENSORS]
        if not out.ok:
            note = out.error or "failed"
            absent = isinstance(out.exc, lmsensors.LmSensorsAbsent)
            if note != self._lm_note:
                log.log(logging.DEBUG if absent else logging.WARNING,
                        "lm_sensors_unused reason=%s (raw hwmon is read instead)", note)
                self._lm_note = note
            if not absent:  # absent is how most machines are, not a failure to report
                result.reports.append(TargetReport(self.source, LM_SENSORS, started,
                                                   out.duration, error=note))
            return set()
        self._lm_note = ""
        chips = [c for c in out.value or [] if self._wanted(c.chip.partition("-")[0], c.chip)]
        for chip in chips:
            samples = samples_for(chip, self.host, time.time())
            result.samples += samples
            result.reports.append(TargetReport(
                self.source, chip.chip, started, out.duration, samples=len(samples),
                detail={"via": LM_SENSORS, "unreadable": chip.unreadable}))
        return {c.chip for c in (out.value or [])}

    def _add(self, result: PollResult, key: str, out: Outcome[ChipReading]) -> None:
        started = time.time() - out.duration
        if not out.ok or out.value is None:
            log.warning("sensor_chip_failed chip=%s error=%s", key, out.error)
            result.reports.append(TargetReport(self.source, key, started, out.duration,
                                               error=out.error))
            return
        chip = out.value
        samples = samples_for(chip, self.host, time.time())
        result.samples += samples
        result.reports.append(TargetReport(
            self.source, chip.chip, started, out.duration, samples=len(samples),
            detail={"via": chip.source, "path": key, "unreadable": chip.unreadable}))
