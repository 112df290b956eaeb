"""Read one RRA of an RRD file straight into numpy: the API's fast path for many series.

``rrdtool.fetch`` returns a tuple per row, and turning 1,000 files x 1,440 rows of tuples into
arrays costs more than reading the files. An RRD file is a fixed header followed by each
RRA's ring of doubles (unknown = NaN), so one ``pread`` of the header and one or two of the
wanted rows give the values with no per-row Python. Layout (rrd_format.h, x86-64, versions
0003/0004): stat_head (128 bytes), ds_def (120 per DS), rra_def (120 per RRA), live_head
(16), pdp_prep (112 per DS), cdp_prep (80 per RRA x DS), rra_ptr (8 per RRA), then data.
tests/test_storage_rrdread.py checks the result against ``rrdtool.fetch``.
"""

from __future__ import annotations

import math
import os
import struct

import numpy as np
import rrdtool

from appliance.storage.rrdfile import last_update

_HEAD_READ = 16384
FLOAT_COOKIE = 8.642135e130


class UnsupportedFile(ValueError):
    """Not an RRD layout this reader knows; the caller falls back to ``rrdtool.fetch``."""


def read(
    path: str, cf: str, granularity: int, start: float | None, stop: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Bucket starts and values (NaN = unknown) of the ``cf`` RRA at ``granularity``.

    Buckets overlapping ``[start, stop)`` are returned, oldest first, limited to what the
    ring still holds and to the last completed bucket.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        head = os.pread(fd, _HEAD_READ, 0)
        if head[:4] != b"RRD\0" or head[4:8] not in (b"0003", b"0004"):
            raise UnsupportedFile(f"{path}: not an RRD version 0003/0004 file")
        cookie, ds_cnt, rra_cnt, pdp_step = struct.unpack_from("<dQQQ", head, 16)
        if cookie != FLOAT_COOKIE:
            raise UnsupportedFile(f"{path}: foreign byte order or float format")
        rra_def = 128 + 120 * ds_cnt
        live = rra_def + 120 * rra_cnt
        rra_ptr = live + 16 + 112 * ds_cnt + 80 * rra_cnt * ds_cnt
        data = rra_ptr + 8 * rra_cnt
        if data > len(head):
            raise UnsupportedFile(f"{path}: header larger than {_HEAD_READ} bytes")
        (last_up,) = struct.unpack_from("<q", head, live)
        offset = data
        for i in range(rra_cnt):
            name = head[rra_def + 120 * i : rra_def + 120 * i + 20].split(b"\0")[0].decode()
            row_cnt, pdp_cnt = struct.unpack_from("<QQ", head, rra_def + 120 * i + 24)
            if name == cf and pdp_cnt * pdp_step == granularity:
                (cur_row,) = struct.unpack_from("<Q", head, rra_ptr + 8 * i)
                return _window(fd, offset, ds_cnt, row_cnt, cur_row, granularity, last_up,
                               start, stop)
            offset += 8 * row_cnt * ds_cnt
        raise UnsupportedFile(f"{path}: no {cf} archive at {granularity} s")
    finally:
        os.close(fd)


def _window(
    fd: int, offset: int, ds_cnt: int, row_cnt: int, cur_row: int, step: int, last_up: int,
    start: float | None, stop: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    # The row at cur_row is the last completed bucket, [newest, newest + step).
    newest = (last_up // step) * step - step
    oldest = newest - (row_cnt - 1) * step
    first = oldest if start is None else max(oldest, (int(start) // step) * step)
    last = newest if stop is None else min(newest, int(-(-stop // step)) * step - step)
    if last < first:
        return np.empty(0), np.empty(0)
    count = (last - first) // step + 1
    # Ring position of bucket ``first``: newest is at cur_row, older ones before it.
    pos = (cur_row - (newest - first) // step) % row_cnt
    size = 8 * ds_cnt
    chunks = []
    remaining, p = count, pos
    while remaining:
        n = min(remaining, row_cnt - p)
        chunks.append(os.pread(fd, n * size, offset + p * size))
        remaining -= n
        p = 0
    values = np.frombuffer(b"".join(chunks), dtype="<f8")[::ds_cnt].astype(float)
    times = first + step * np.arange(count, dtype=float)
    return times, values


def librrd_fetch(
    path: str, cf: str, granularity: int, points: int, start: float | None, stop: float | None
) -> list[tuple[int, float]]:
    """Known ``(bucket start, value)`` by ``rrdtool.fetch``, for a file layout :func:`read`
    does not know (an archive of ``points`` rows). It locks the file, as librrd's readers do."""
    last = last_update(path) // 1_000_000
    end = last if stop is None else min(stop, last + granularity)
    earliest = (last // granularity) * granularity - (points - 1) * granularity
    begin = earliest if start is None else max(start, earliest)
    begin = int(begin // granularity) * granularity - granularity
    end = int(math.ceil(end / granularity)) * granularity
    if end <= begin:
        return []
    (f_start, _f_end, step), _names, rows = rrdtool.fetch(
        path, cf, "-r", str(granularity), "-s", str(begin), "-e", str(end),
    )
    if step != granularity:
        return []
    lo = start if start is not None else -math.inf
    hi = stop if stop is not None else math.inf
    out = []
    for i, (value,) in enumerate(rows):
        if value is None:
            continue
        ts = f_start + i * step
        if ts + step > lo and ts < hi:
            out.append((ts, value))
    return out
