"""Numbers, sizes and times as an operator reads them; registered as Jinja filters.

Pure functions, so a page never shows ``1795300544.123`` or ``0.000123456`` raw.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
_IEC = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
#: Byte-sized units the pollsters use, in bytes.
_BYTES = {"B": 1, "KB": 1024, "MB": 1024**2}


def number(value: float | None, unit: str | None = None) -> str:
    """``1234567`` -> ``1.23 M``; byte units in IEC (``1.5 MiB/s``); the unit follows."""
    if value is None or not math.isfinite(value):
        return "–"
    base, slash, per = (unit or "").partition("/")
    if base in _BYTES:
        return size(value * _BYTES[base]) + (f"/{per}" if slash else "")
    prefix = ""
    for scale, symbol in _SI:
        if abs(value) >= scale:
            value, prefix = value / scale, symbol
            break
    return f"{value:.3g} {prefix}{unit or ''}".rstrip()


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
    "attribute": attribute,
}
