"""Read the kernel's hwmon sysfs: chips under ``/sys/class/hwmon`` and their features.

Chips are named the way libsensors names them (``<name>-<bus>-<address>``, e.g.
``k10temp-pci-00c3``), derived from the chip's ``device`` link, so a chip read here and the
same chip read through ``sensors -j`` get the same resource ids.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from appliance.pollsters.sensors.reading import (
    SUBFEATURE,
    ChipReading,
    feature_from_subfeatures,
)

#: Subsystems libsensors knows, per its sysfs.c; others (nvme, drm) are class devices whose
#: parent is the bus device.
_BUSES = ("i2c", "spi", "pci", "platform", "of_platform", "acpi", "scsi", "mdio_bus")
_PCI_ADDRESS = re.compile(r"([0-9a-f]+):([0-9a-f]+):([0-9a-f]+)\.(\d)")  # domain:bus:slot.fn


@dataclass(frozen=True, slots=True)
class HwmonChip:
    """A chip found under the hwmon root, named but not yet read."""

    path: Path  # the directory holding the attribute files
    key: str  # "hwmon3": stable while the machine runs; keys the per-chip time limit
    prefix: str  # the driver's `name`, e.g. "nct6798"
    chip: str  # libsensors-style full name, e.g. "nct6798-isa-0290"


def read_sysfs(path: Path) -> str:
    """One raw ``read()``: some hwmon drivers answer a second read with EAGAIN, and a buffered
    reader (``Path.read_text``) may issue one. Raises ``OSError`` as the driver does."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 4096).decode("ascii", "replace").strip()
    finally:
        os.close(fd)


def _bus_device(device: Path) -> tuple[str, str] | None:
    """(subsystem, device dir name) of the bus device at or above ``device``."""
    for d in (device, *device.parents):
        link = d / "subsystem"
        if link.is_symlink():
            subsystem = os.path.basename(os.readlink(link))
            if subsystem in _BUSES:
                return subsystem, d.name
        if d.name == "devices":
            break
    return None


def chip_name(prefix: str, hwmon_dir: Path) -> str:
    """libsensors' name for a chip: ``sensors_snprintf_chip_name`` of its bus and address."""
    device = hwmon_dir / "device"
    bus = _bus_device(Path(os.path.realpath(device))) if device.is_symlink() else None
    if bus is None:
        return f"{prefix}-virtual-0"  # libsensors assumes virtual devices are unique
    subsystem, dev = bus
    if subsystem == "pci" and (m := _PCI_ADDRESS.fullmatch(dev)):
        domain, bus_nr, slot, fn = (int(x, 16) for x in m.groups())
        return f"{prefix}-pci-{(domain << 16) + (bus_nr << 8) + (slot << 3) + fn:04x}"
    if subsystem == "i2c" and (m := re.fullmatch(r"(\d+)-([0-9a-f]+)", dev)):
        return f"{prefix}-i2c-{int(m[1])}-{int(m[2], 16):02x}"
    if subsystem == "spi" and (m := re.fullmatch(r"spi(\d+)\.(\d+)", dev)):
        return f"{prefix}-spi-{int(m[1])}-{int(m[2]):x}"
    if subsystem == "acpi":
        m = re.search(r":(\d+)$", dev)
        return f"{prefix}-acpi-{int(m[1]) if m else 0:x}"
    if subsystem == "scsi" and (m := re.fullmatch(r"(\d+):\d+:\d+:([0-9a-f]+)", dev)):
        return f"{prefix}-scsi-{int(m[1])}-{int(m[2], 16):x}"
    if subsystem == "mdio_bus":
        m = re.search(r":([0-9a-f]+)$", dev)
        return f"{prefix}-mdio-{int(m[1], 16) if m else 0:x}"
    # platform devices are "name.N" with N the ISA address (nct6775.656 -> 0x290)
    m = re.search(r"\.(\d+)$", dev)
    return f"{prefix}-isa-{int(m[1]) if m else 0:04x}"


def discover(root: Path) -> list[HwmonChip]:
    """Every chip under ``root`` that has a name (reading ``name`` never touches hardware)."""
    chips = []
    try:
        entries = sorted(root.iterdir(), key=lambda p: (len(p.name), p.name))
    except FileNotFoundError:
        return []  # no hwmon on this machine (a VM): not an error
    for entry in entries:
        # Old drivers put their attributes on the device, not the hwmon class directory.
        for attrs in (entry, entry / "device"):
            try:
                prefix = read_sysfs(attrs / "name")
            except OSError:
                continue
            chips.append(HwmonChip(attrs, entry.name, prefix, chip_name(prefix, entry)))
            break
    return chips


def read_chip(chip: HwmonChip) -> ChipReading:
    """Read every feature of one chip; a file that fails is listed, not fatal."""
    out = ChipReading(chip.chip, "hwmon")
    features: dict[str, dict[str, float]] = {}
    labels: dict[str, str] = {}
    for name in sorted(os.listdir(chip.path)):
        m = SUBFEATURE.match(name)
        if m is None or m[3] in ("alarm", "beep", "fault", "type", "enable", "offset"):
            continue
        feature = f"{m[1]}{m[2]}"
        try:
            text = read_sysfs(chip.path / name)
        except OSError as exc:
            # EIO/ENXIO/ENODATA: the sensor is absent or asleep (a suspended GPU, a fan
            # header with nothing plugged in); the others still count.
            out.unreadable.append(f"{name}: {exc.strerror or exc}")
            continue
        if m[3] == "label":
            labels[feature] = text
            continue
        try:
            features.setdefault(feature, {})[m[3]] = float(text)
        except ValueError:
            out.unreadable.append(f"{name}: not a number: {text[:20]!r}")
    for feature, values in sorted(features.items(), key=lambda kv: _natural(kv[0])):
        reading = feature_from_subfeatures(
            chip.chip, feature, labels.get(feature, feature), values, scale=True
        )
        if reading is not None:
            out.readings.append(reading)
    return out


def _natural(feature: str) -> tuple[str, int]:
    m = re.match(r"^([a-z]+)(\d+)$", feature)
    return (m[1], int(m[2])) if m else (feature, 0)
