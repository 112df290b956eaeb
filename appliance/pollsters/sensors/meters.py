"""What to meter from a hardware sensor: one row per sensor kind, shared by every reader.

The kind is the prefix of the kernel's hwmon attribute names (``temp1_input``, ``fan2_input``,
``in0_input``), which ``sensors -j`` keeps as its sub-feature keys, so both readers classify
a feature the same way. ``sysfs_scale`` turns the kernel's integer units into the meter's.
Names are the ones the SNMP LM-SENSORS-MIB definitions use, so a sensor read over SNMP and
one read here share dashboards and alarms.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.model import Kind


@dataclass(frozen=True, slots=True)
class SensorMeter:
    name: str
    unit: str
    sysfs_scale: float  # kernel integer -> meter unit
    value_keys: tuple[str, ...] = ("input",)  # sub-features that carry the reading, in order
    kind: Kind = Kind.GAUGE


SENSOR_METERS: dict[str, SensorMeter] = {
    "temp": SensorMeter("hardware.sensor.temperature", "C", 0.001),  # millidegree Celsius
    "fan": SensorMeter("hardware.sensor.fan", "RPM", 1.0),
    "in": SensorMeter("hardware.sensor.voltage", "V", 0.001),  # millivolt
    # microwatt; some drivers (amdgpu before 6.x, fam15h_power) give only an average
    "power": SensorMeter("hardware.sensor.power", "W", 1e-6, ("input", "average")),
    "curr": SensorMeter("hardware.sensor.current", "A", 0.001),  # milliampere
}

#: Sub-features kept as resource attributes (in the meter's unit): the alarm limits.
LIMITS = ("min", "max", "lcrit", "crit", "emergency", "cap")
