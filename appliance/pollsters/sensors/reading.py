"""Plain data every sensor reader returns, whichever source it reads."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from appliance.pollsters.sensors.meters import LIMITS, SENSOR_METERS

#: ``temp1_input`` -> ("temp", "1", "input"); the grammar of hwmon's sysfs ABI.
SUBFEATURE = re.compile(r"^(temp|fan|in|power|curr)(\d+)_([a-z_]+)$")


@dataclass(slots=True)
class SensorReading:
    """One feature of one chip, in its meter's unit (C, RPM, V, W, A)."""

    chip: str  # libsensors' chip name, e.g. "coretemp-isa-0000"
    feature: str  # "temp1": the stable part of the resource id
    kind: str  # a key of SENSOR_METERS
    label: str
    value: float
    limits: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class ChipReading:
    """Everything one chip gave in one read, and what it could not give."""

    chip: str
    source: str  # "hwmon", "lm-sensors" or "thermal"
    readings: list[SensorReading] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # files or sub-features that failed


def feature_from_subfeatures(
    chip: str, feature: str, label: str, values: dict[str, float], scale: bool
) -> SensorReading | None:
    """Build a reading from one feature's sub-features (``{"input": 45000, "max": ...}``).

    ``scale`` applies the sysfs unit conversion (raw hwmon); lm-sensors values are already in
    meter units. Returns ``None`` when the feature has no value sub-feature.
    """
    m = re.match(r"^([a-z]+)\d+$", feature)
    meter = SENSOR_METERS.get(m.group(1)) if m else None
    if meter is None:
        return None
    factor = meter.sysfs_scale if scale else 1.0
    value = next((values[k] for k in meter.value_keys if k in values), None)
    if value is None:
        return None
    limits = {k: round(values[k] * factor, 6) for k in LIMITS if k in values}
    return SensorReading(chip, feature, m.group(1), label, round(value * factor, 6), limits)
