"""InfluxDB line protocol -> points, all or nothing.

``measurement[,tag=v...] field=v[,field=v...] [timestamp]``, one point a line, with the
escapes of the reference (``\\,`` ``\\=`` ``\\ `` in names and tags; ``\\"`` ``\\\\`` in
strings). No maintained Python package parses it (the client libraries only write it), so this
is the one hand-written parser of the appliance; it is pure and tested on its own. Numbers
(float, ``i`` and ``u`` integers) and booleans (as 1/0) are kept; string fields cannot be a
measure and are counted as skipped.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

#: Timestamp precision (the ``precision`` query parameter) -> seconds per unit.
PRECISIONS = {"ns": 1e-9, "n": 1e-9, "us": 1e-6, "u": 1e-6, "ms": 1e-3, "s": 1.0,
              "m": 60.0, "h": 3600.0}
TRUE = {"t", "T", "true", "True", "TRUE"}
FALSE = {"f", "F", "false", "False", "FALSE"}


class LineError(ValueError):
    """A line that is not valid line protocol; ``str()`` names the line and the problem."""

    def __init__(self, lineno: int, problem: str):
        super().__init__(f"line {lineno}: {problem}")


@dataclass(frozen=True, slots=True)
class Point:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, float]
    timestamp: float  # epoch seconds
    skipped: int  # string fields left out


def _split(text: str, sep: str, quotes: bool = False) -> list[str]:
    """Split on ``sep`` where it is neither escaped nor (with ``quotes``) inside a string."""
    parts, start, i, quoted = [], 0, 0, False
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if quotes and c == '"':
            quoted = not quoted
        elif c == sep and not quoted:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if quoted:
        raise ValueError("unterminated string")
    parts.append(text[start:])
    return parts


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in ',= "\\':
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out)


def _value(raw: str) -> float | None:
    """A field's value as a float; None for a string field."""
    if raw.startswith('"'):
        if len(raw) < 2 or not raw.endswith('"'):
            raise ValueError(f"bad string value {raw!r}")
        return None
    if raw in TRUE:
        return 1.0
    if raw in FALSE:
        return 0.0
    if raw[-1:] in ("i", "u"):
        try:
            return float(int(raw[:-1]))
        except ValueError:
            raise ValueError(f"bad integer value {raw!r}") from None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"bad value {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"value {raw!r} is not finite")
    return value


def parse_line(line: str, lineno: int, unit: float, now: float) -> Point:
    try:
        sections = [s for s in _split(line, " ", quotes=True) if s]
        if len(sections) not in (2, 3):
            raise ValueError("needs a measurement, fields and an optional timestamp")
        head = _split(sections[0], ",")
        measurement = _unescape(head[0])
        if not measurement:
            raise ValueError("empty measurement name")
        tags = {}
        for pair in head[1:]:
            key, sep, value = (_unescape(p) for p in _split_once(pair))
            if not sep or not key or not value:
                raise ValueError(f"bad tag {pair!r}")
            tags[key] = value
        fields, skipped = {}, 0
        for pair in _split(sections[1], ",", quotes=True):
            key, sep, raw = _split_once(pair)
            if not sep or not key or not raw:
                raise ValueError(f"bad field {pair!r}")
            value = _value(raw)
            if value is None:
                skipped += 1
            else:
                fields[_unescape(key)] = value
        if len(sections) == 3:
            try:
                timestamp = int(sections[2]) * unit
            except ValueError:
                raise ValueError(f"bad timestamp {sections[2]!r}") from None
        else:
            timestamp = now
    except ValueError as exc:
        raise LineError(lineno, str(exc)) from None
    return Point(measurement, tags, fields, timestamp, skipped)


def _split_once(pair: str) -> tuple[str, str, str]:
    """``key=value`` split at the first unescaped ``=``."""
    parts = _split(pair, "=")
    if len(parts) < 2:
        return pair, "", ""
    return parts[0], "=", "=".join(parts[1:])


def parse(text: str, precision: str = "ns", now: float | None = None) -> list[Point]:
    """Every point of a body; :class:`LineError` at the first bad line (nothing is kept)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
    unit = PRECISIONS[precision]
    now = time.time() if now is None else now
    return [
        parse_line(line, n, unit, now)
        for n, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
