"""Read one RRA of RRD files straight into numpy: the API's fast path for many series.

``rrdtool.fetch`` returns a tuple per row, and turning 1,000 files x 1,440 rows of tuples into
arrays costs more than reading the files. An RRD file is a fixed header followed by each
RRA's ring of doubles (unknown = NaN), so one ``pread`` of the header and one or two of the
wanted rows give the values with no per-row Python. Layout (rrd_format.h, x86-64, versions
0003/0004): stat_head (128 bytes), ds_def (120 per DS), rra_def (120 per RRA), live_head
(16), pdp_prep (112 per DS), cdp_prep (80 per RRA x DS), rra_ptr (8 per RRA), then data.
The static part (stat_head, ds_def, rra_def) is parsed once per distinct layout (the files
of one policy share it); each read then unpacks only the last update and the ring pointer.
tests/test_storage_rrdread.py checks the results against ``rrdtool.fetch``.
"""

from __future__ import annotations

import functools
import math
import os
import struct
import sys
from collections.abc import Callable, Sequence

import numpy as np
import rrdtool

from appliance.storage.rrdfile import last_update

_HEAD_READ = 16384
FLOAT_COOKIE = 8.642135e130


class UnsupportedFile(ValueError):
    """Not an RRD layout this reader knows; the caller falls back to ``rrdtool.fetch``."""


@functools.lru_cache(maxsize=256)
def _layout(static: bytes) -> tuple[int, int, int, dict[tuple[str, int], tuple[int, int, int]]]:
    """``(DS count, live_head offset, rra_ptr offset, {(cf, granularity): (data offset, row
    count, RRA index)})`` of a header's static part; :class:`UnsupportedFile` is not cached."""
    if static[:4] != b"RRD\0" or static[4:8] not in (b"0003", b"0004"):
        raise UnsupportedFile("not an RRD version 0003/0004 file")
    cookie, ds_cnt, rra_cnt, pdp_step = struct.unpack_from("<dQQQ", static, 16)
    if cookie != FLOAT_COOKIE:
        raise UnsupportedFile("foreign byte order or float format")
    rra_def = 128 + 120 * ds_cnt
    live = rra_def + 120 * rra_cnt
    rra_ptr = live + 16 + 112 * ds_cnt + 80 * rra_cnt * ds_cnt
    offset = rra_ptr + 8 * rra_cnt
    if offset > _HEAD_READ:
        raise UnsupportedFile(f"header larger than {_HEAD_READ} bytes")
    archives: dict[tuple[str, int], tuple[int, int, int]] = {}
    for i in range(rra_cnt):
        name = static[rra_def + 120 * i : rra_def + 120 * i + 20].split(b"\0")[0].decode()
        row_cnt, pdp_cnt = struct.unpack_from("<QQ", static, rra_def + 120 * i + 24)
        archives.setdefault((name, pdp_cnt * pdp_step), (offset, row_cnt, i))
        offset += 8 * row_cnt * ds_cnt
    return ds_cnt, live, rra_ptr, archives


#: The static header last parsed and its layout: the files of one selection share one, and
#: comparing the bytes is cheaper than hashing them for the cache (a read of 100 files).
_last_layout: tuple[bytes, tuple] = (b"", ())
#: Buckets are read straight into the caller's array where its doubles are the file's.
_NATIVE = sys.byteorder == "little"


def _layout_of(static: bytes) -> tuple[int, int, int, dict[tuple[str, int], tuple[int, int, int]]]:
    global _last_layout
    seen, layout = _last_layout
    if static != seen:
        layout = _layout(static)
        _last_layout = (static, layout)
    return layout  # type: ignore[return-value]


class _Ring:
    """One open file's ``cf`` archive at ``step``: where its buckets are, up to the newest."""

    __slots__ = ("fd", "step", "ds_cnt", "offset", "rows", "cur_row", "newest", "oldest")

    def __init__(self, fd: int, path: str, cf: str, step: int):
        head = os.pread(fd, _HEAD_READ, 0)
        if len(head) < 48:
            raise UnsupportedFile(f"{path}: not an RRD file")
        ds_cnt, rra_cnt = struct.unpack_from("<QQ", head, 24)
        static = 128 + 120 * (ds_cnt + rra_cnt)
        try:
            if static > len(head):
                raise UnsupportedFile(f"header larger than {len(head)} bytes")
            ds_cnt, live, rra_ptr, archives = _layout_of(head[:static])
            if rra_ptr + 8 * rra_cnt > len(head):
                raise UnsupportedFile(f"header larger than {len(head)} bytes")
        except UnsupportedFile as exc:
            raise UnsupportedFile(f"{path}: {exc}") from None
        if (cf, step) not in archives:
            raise UnsupportedFile(f"{path}: no {cf} archive at {step} s")
        self.fd, self.step, self.ds_cnt = fd, step, ds_cnt
        self.offset, self.rows, index = archives[cf, step]
        (last_up,) = struct.unpack_from("<q", head, live)
        (self.cur_row,) = struct.unpack_from("<Q", head, rra_ptr + 8 * index)
        # The row at cur_row is the last completed bucket, [newest, newest + step).
        self.newest = (last_up // step) * step - step
        self.oldest = self.newest - (self.rows - 1) * step

    def values(self, first: int, count: int) -> np.ndarray:
        """The ``count`` buckets from ``first`` on (all within the ring), read-only."""
        # Ring position of bucket ``first``: newest is at cur_row, older ones before it.
        p = (self.cur_row - (self.newest - first) // self.step) % self.rows
        size = 8 * self.ds_cnt
        chunks = []
        while count:
            n = min(count, self.rows - p)
            chunks.append(os.pread(self.fd, n * size, self.offset + p * size))
            count -= n
            p = 0
        return np.frombuffer(b"".join(chunks), dtype="<f8")[:: self.ds_cnt]

    def read_into(self, out: np.ndarray, first: int) -> None:
        """:meth:`values` from ``first`` written into ``out`` (a contiguous float64 row
        slice): with one data source and native doubles, ``preadv`` fills it directly."""
        if self.ds_cnt != 1 or not _NATIVE:
            out[:] = self.values(first, len(out))
            return
        p = (self.cur_row - (self.newest - first) // self.step) % self.rows
        done = 0
        while done < len(out):
            n = min(len(out) - done, self.rows - p)
            if os.preadv(self.fd, [out[done : done + n]], self.offset + p * 8) != n * 8:
                raise UnsupportedFile("truncated data")
            done += n
            p = 0


def read(
    path: str, cf: str, granularity: int, start: float | None, stop: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Bucket starts and values (NaN = unknown) of the ``cf`` RRA at ``granularity``.

    Buckets overlapping ``[start, stop)`` are returned, oldest first, limited to what the
    ring still holds and to the last completed bucket.
    """
    step = granularity
    fd = os.open(path, os.O_RDONLY)
    try:
        ring = _Ring(fd, path, cf, step)
        first, last = ring.oldest, ring.newest
        if start is not None:
            first = max(first, (int(start) // step) * step)
        if stop is not None:
            last = min(last, int(-(-stop // step)) * step - step)
        if last < first:
            return np.empty(0), np.empty(0)
        count = (last - first) // step + 1
        times = first + step * np.arange(count, dtype=float)
        return times, ring.values(first, count).astype(float)
    finally:
        os.close(fd)


def read_block(
    paths: Sequence[str],
    cf: str,
    granularity: int,
    first: int,
    count: int,
    fallback: Callable[[int], tuple[np.ndarray, np.ndarray]],
) -> np.ndarray:
    """The ``cf`` buckets of many files as one ``len(paths) x count`` array, row ``r`` from
    ``paths[r]``, column ``c`` the bucket starting at ``first + c * granularity`` (``first``
    a multiple of ``granularity``); NaN where unknown, not held or no file.

    One call for a whole selection: no per-file arrays of times, no copies besides the
    block's own. A file of a layout this reader does not know is read by ``fallback(r)``
    (bucket starts and values, e.g. from ``rrdtool.fetch``) and placed by time.
    """
    step = granularity
    out = np.full((len(paths), count), np.nan)
    end = first + (count - 1) * step
    for r, path in enumerate(paths):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            ring = _Ring(fd, path, cf, step)
            lo, hi = max(first, ring.oldest), min(end, ring.newest)
            if lo <= hi:
                col = (lo - first) // step
                ring.read_into(out[r, col : col + (hi - lo) // step + 1], lo)
        except UnsupportedFile:
            out[r] = np.nan  # a truncated read may have left part of a row
            times, values = fallback(r)
            cols = ((times - first) // step).astype(np.int64)
            ok = (cols >= 0) & (cols < count)
            out[r, cols[ok]] = values[ok]
        finally:
            os.close(fd)
    return out


def fetch_with_librrd(
    path: str, cf: str, granularity: int, rows: int, start: float | None, stop: float | None
) -> list[tuple[int, float]]:
    """Known points ``(bucket start, value)`` through ``rrdtool.fetch``, for a layout
    :func:`read` does not know. librrd locks the file while it reads, and an rrdcached write
    meeting that lock drops its values: this is only the fallback."""
    last = last_update(path) // 1_000_000
    end = last if stop is None else min(stop, last + granularity)
    earliest = (last // granularity) * granularity - (rows - 1) * granularity
    begin = earliest if start is None else max(start, earliest)
    begin = int(begin // granularity) * granularity - granularity
    end = int(math.ceil(end / granularity)) * granularity
    if end <= begin:
        return []
    (f_start, _f_end, step), _names, data = rrdtool.fetch(
        path, cf, "-r", str(granularity), "-s", str(begin), "-e", str(end),
    )
    if step != granularity:
        return []
    lo = start if start is not None else -math.inf
    hi = stop if stop is not None else math.inf
    return [
        (f_start + i * step, value)
        for i, (value,) in enumerate(data)
        if value is not None and f_start + (i + 1) * step > lo and f_start + i * step < hi
    ]
