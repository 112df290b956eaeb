"""The fixed table of named converters a meter definition may name (never ``eval``).

Ceilometer's ``snmp.yaml`` carried Python lambdas as strings and ran them through ``eval``
(STYLE.md (c) 1). Here a definition can only pick a converter from :data:`CONVERTERS` by
name, plus a numeric ``scale``; adding a converter is a code change with a test.

A raw value, as the client hands it over, is an ``int`` (numbers, counters, time ticks),
``bytes`` (octet strings) or a dotted ``str`` (object identifiers, IP addresses).
"""

from __future__ import annotations

from collections.abc import Callable

Raw = int | bytes | str
Converted = float | str

# IF-MIB ifAdminStatus / ifOperStatus (RFC 2863).
_IF_STATUS = {
    1: "up",
    2: "down",
    3: "testing",
    4: "unknown",
    5: "dormant",
    6: "notPresent",
    7: "lowerLayerDown",
}

# HOST-RESOURCES-MIB hrStorageTypes (1.3.6.1.2.1.25.2.1.N).
_HR_STORAGE_TYPES = {
    "1": "other",
    "2": "ram",
    "3": "virtualMemory",
    "4": "fixedDisk",
    "5": "removableDisk",
    "6": "floppyDisk",
    "7": "compactDisc",
    "8": "ramDisk",
    "9": "flashMemory",
    "10": "networkDisk",
}
_HR_STORAGE_TYPE_PREFIX = "1.3.6.1.2.1.25.2.1."


def number(raw: Raw) -> float:
    """A numeric value as a float; anything else is a broken agent answer."""
    if isinstance(raw, int):
        return float(raw)
    raise ValueError(f"expected a number, got {type(raw).__name__}")


def text(raw: Raw) -> str:
    """An octet string as text (agents send Latin-1 or UTF-8; never fail on a byte)."""
    if isinstance(raw, bytes):
        return raw.decode("utf-8", errors="replace").rstrip("\x00")
    return str(raw)


def mac(raw: Raw) -> str:
    """A physical address (ifPhysAddress) as ``aa:bb:cc:dd:ee:ff``."""
    if isinstance(raw, bytes):
        return ":".join(f"{b:02x}" for b in raw)
    return str(raw)


def complement_percent(raw: Raw) -> float:
    """100 - value: busy percent from an idle percent (UCD ssCpuIdle -> hardware.cpu.util)."""
    return 100.0 - number(raw)


def if_status(raw: Raw) -> str:
    """IF-MIB status enum as its name (an attribute, so a change is a history revision)."""
    return _IF_STATUS.get(raw, str(raw)) if isinstance(raw, int) else text(raw)


def hr_storage_type(raw: Raw) -> str:
    """hrStorageType OID as its short name (``fixedDisk``); unknown OIDs stay dotted."""
    oid = text(raw)
    if oid.startswith(_HR_STORAGE_TYPE_PREFIX):
        return _HR_STORAGE_TYPES.get(oid[len(_HR_STORAGE_TYPE_PREFIX) :], oid)
    return oid


CONVERTERS: dict[str, Callable[[Raw], Converted]] = {
    "number": number,
    "text": text,
    "mac": mac,
    "complement_percent": complement_percent,
    "if_status": if_status,
    "hr_storage_type": hr_storage_type,
}
