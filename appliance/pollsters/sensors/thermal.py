"""Read the kernel's thermal zones (``/sys/class/thermal/thermal_zoneN``).

Zones exist on machines whose firmware or SoC describes them (ACPI ``_TMP``, x86_pkg_temp,
ARM SoCs) and often without any hwmon chip. Each zone is one temperature; its trip points
give the limits: ``critical`` (the firmware powers off) and ``hot``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from appliance.pollsters.sensors.hwmon import read_sysfs
from appliance.pollsters.sensors.reading import ChipReading, SensorReading

_TRIP_LIMITS = {"critical": "crit", "hot": "max"}


@dataclass(frozen=True, slots=True)
class ThermalZone:
    path: Path
    key: str  # "thermal_zone0", also the chip name
    type: str  # "acpitz", "x86_pkg_temp", ...


def discover(root: Path) -> list[ThermalZone]:
    try:
        entries = [e for e in root.iterdir() if re.fullmatch(r"thermal_zone\d+", e.name)]
    except FileNotFoundError:
        return []
    zones = []
    for entry in sorted(entries, key=lambda p: int(p.name[12:])):
        try:
            zones.append(ThermalZone(entry, entry.name, read_sysfs(entry / "type")))
        except OSError:
            continue
    return zones


def read_zone(zone: ThermalZone) -> ChipReading:
    out = ChipReading(zone.key, "thermal")
    try:
        value = int(read_sysfs(zone.path / "temp")) / 1000.0
    except (OSError, ValueError) as exc:
        out.unreadable.append(f"temp: {exc}")
        return out
    limits: dict[str, float] = {}
    for trip in sorted(zone.path.glob("trip_point_*_type")):
        try:
            limit = _TRIP_LIMITS.get(read_sysfs(trip))
            if limit is not None and limit not in limits:
                temp = trip.with_name(trip.name.replace("_type", "_temp"))
                limits[limit] = int(read_sysfs(temp)) / 1000.0
        except (OSError, ValueError) as exc:
            out.unreadable.append(f"{trip.name}: {exc}")
    out.readings.append(SensorReading(zone.key, "temp1", "temp", zone.type, value, limits))
    return out
