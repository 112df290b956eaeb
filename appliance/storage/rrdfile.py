"""What an RRD file's header says that librrd's API does not: the exact last update.

``rrdtool.last()`` returns whole seconds, while RRD keeps the microseconds of the last
update and refuses an update at or before it ("minimum one second step" is its message even
for a sub-second clash). A replay that compares fractional timestamps against whole seconds
re-sends a value the file already holds and fails (FIELD-NOTES, session 2). And
``rrdtool.last()`` takes the file's lock: while rrdcached writes the file it fails ("could not
lock RRD"), and while it holds the lock rrdcached's own write of that file fails. This reader
takes no lock. The live header
sits after stat_head (128 bytes), one ds_def per DS (120) and one rra_def per RRA (120):
``time_t last_up; long last_up_usec`` (rrd_format.h, versions 0003/0004, x86-64).
"""

from __future__ import annotations

import math
import os
import struct

_STAT_HEAD = 128
_DEF_SIZE = 120
_LAST_DS = 30  # pdp_prep's first field, right after the live header
FLOAT_COOKIE = 8.642135e130


class UnsupportedFile(ValueError):
    """Not an RRD layout this reader knows (the caller may fall back to librrd)."""


def rrd_microseconds(timestamp: float) -> int:
    """A timestamp as RRD stores it, in microseconds: whole seconds plus the fraction
    *truncated* to microseconds, as librrd parses an update (``1700000060.300`` is kept as
    ``...060.299999``), so comparisons with :func:`last_update` are exact."""
    seconds = math.floor(timestamp)
    return seconds * 1_000_000 + int((timestamp - seconds) * 1e6)


def last_update(path: str | os.PathLike) -> int:
    """The file's last update time in microseconds (see :func:`rrd_microseconds`)."""
    return _live_head(path)[0]


def last_value(path: str | os.PathLike) -> float | None:
    """The first data source's last value as given to the last update (``U``: None), from
    ``pdp_prep.last_ds`` (30 bytes of text after the live header): what
    ``rrdtool.lastupdate`` says, without its lock."""
    text = _live_head(path)[1].split(b"\0", 1)[0].decode("ascii", "replace").strip()
    try:
        value = float(text)
    except ValueError:
        return None
    return None if value != value else value


def _live_head(path: str | os.PathLike) -> tuple[int, bytes]:
    with open(path, "rb") as f:
        head = f.read(_STAT_HEAD)
        if len(head) < _STAT_HEAD or head[:4] != b"RRD\0" or head[4:8] not in (b"0003", b"0004"):
            raise UnsupportedFile(f"{path}: not an RRD version 0003/0004 file")
        cookie, ds_cnt, rra_cnt = struct.unpack_from("<dQQ", head, 16)
        if cookie != FLOAT_COOKIE:
            raise UnsupportedFile(f"{path}: foreign byte order or float format")
        f.seek(_STAT_HEAD + _DEF_SIZE * (ds_cnt + rra_cnt))
        live = f.read(16 + _LAST_DS)
    if len(live) < 16 + _LAST_DS:
        raise UnsupportedFile(f"{path}: truncated header")
    seconds, usec = struct.unpack_from("<qq", live)
    return seconds * 1_000_000 + usec, live[16:]
