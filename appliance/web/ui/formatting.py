"""Numbers, sizes and times as an operator reads them; registered as Jinja filters.

Pure functions, so a page never shows ``1795300544.123`` or ``0.000123456`` raw.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import NamedTuple

_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
_IEC = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
#: Byte-sized units the pollsters use, in bytes (Ceilometer's KB are KiB: psutil / 1024).
_BYTES = {"B": 1, "KB": 1024, "MB": 1024**2}
#: Units that count things: shown as plain numbers (``0.3``, never ``300 mprocess``).
_COUNTS = {"", "process", "packet", "request", "error", "drop", "count", "domain"}
#: Cumulative time units whose per-second rate reads best as a share of one second, in %
#: (``cpu`` in ns/s is a CPU's busy share; a disk's ms/s is its busy time).
_TIME_SHARE = {"ns": 1e-7, "us": 1e-4, "ms": 0.1, "s": 100.0}


class Shown(NamedTuple):
    """How a stored unit is shown: ``value * scale``, then ``unit`` after it.

    ``prefixes`` is ``iec`` (KiB, MiB: bytes), ``si`` (k, M, G from 1000 up, glued to the
    unit: ``1.2 kW``; never a milli- prefix), ``count`` (the same, standing alone: ``1.5 k
    packet/s``; a count's gauge drops its noun: a load is ``0.3``) or ``none`` (percentages).
    """

    unit: str
    scale: float
    prefixes: str


def shown(unit: str | None) -> Shown:
    """The display of a stored unit; ``X/s`` is the rate of a cumulative ``X`` meter.

    The API keeps Ceilometer's units (``KB``, ``ns``, ``process``); only pages convert.
    """
    base, slash, per = (unit or "").partition("/")
    rate = "/s" if slash and per == "s" else (f"/{per}" if slash else "")
    if base in _BYTES:
        return Shown("B" + rate, _BYTES[base], "iec")
    if base == "%":
        return Shown("%", 1.0, "none")
    if rate == "/s" and base in _TIME_SHARE:
        return Shown("%", _TIME_SHARE[base], "none")
    if base in _COUNTS:
        return Shown(f"{base}{rate}" if rate else "", 1.0, "count")
    return Shown(base + rate, 1.0, "si")


def number(value: float | None, unit: str | None = None) -> str:
    """A stored value as a person reads it: ``23.1 GiB``, ``0.3``, ``34.7 %``, ``1.2 kW``."""
    if value is None or not math.isfinite(value):
        return "–"
    how = shown(unit)
    value *= how.scale
    if how.prefixes == "iec":
        return size(value) + how.unit[1:]
    prefix = ""
    if how.prefixes in ("si", "count"):
        for scale, symbol in _SI:
            if abs(value) >= scale:
                value, prefix = value / scale, symbol
                break
    if how.prefixes == "count" and prefix:
        prefix += " "
    return " ".join(part for part in (f"{value:.3g}", (prefix + how.unit).strip()) if part)


def unit_label(unit: str | None) -> str:
    """The unit a chart's caption names (``GiB`` charts say ``B``, rates ``/s``)."""
    return shown(unit).unit


def size(n: float | None) -> str:
    """Bytes in IEC units: ``12.3 MiB``."""
    if n is None:
        return "–"
    value, i = float(n), 0
    while abs(value) >= 1024 and i < len(_IEC) - 1:
        value /= 1024
        i += 1
    return f"{value:.0f} {_IEC[i]}" if i == 0 else f"{value:.1f} {_IEC[i]}"


def span(seconds: float | None) -> str:
    """A duration: ``35 ms``, ``4.2 s``, ``3 min``, ``2 h 5 min``, ``4 d 3 h``."""
    if seconds is None:
        return "–"
    s = float(seconds)
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 60:
        return f"{s:.1f} s"
    minutes, hours, days = int(s // 60), int(s // 3600), int(s // 86400)
    if s < 3600:
        return f"{minutes} min"
    if s < 86400:
        return f"{hours} h {minutes % 60} min"
    return f"{days} d {hours % 24} h"


def ago(ts: float | None, now: float | None = None) -> str:
    """``12 s ago``; ``never`` for a missing timestamp."""
    if ts is None:
        return "never"
    delta = (time.time() if now is None else now) - float(ts)
    if delta < 0:
        return "just now"
    if delta < 60:
        return f"{delta:.0f} s ago"
    return f"{span(delta)} ago"


def when(ts: float | None) -> str:
    """A timestamp in UTC, to the second."""
    if ts is None:
        return "–"
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def attribute(value: object, key: str) -> object:
    """An attribute value for display: epoch-second times (``boot_time``) as UTC dates."""
    if (
        key.endswith(("_time", "_at"))
        and isinstance(value, int | float)
        and not isinstance(value, bool)
        and value > 1e8
    ):
        return when(value)
    return value


FILTERS = {
    "number": number, "size": size, "span": span, "ago": ago, "when": when,
    "attribute": attribute, "unit_label": unit_label,
}
