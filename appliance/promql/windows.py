"""Window reductions over bucket arrays: what a selector or ``*_over_time`` sees at each time.

A block is ``values[n, K]``, one row per series, column ``i`` the bucket labelled
``first + i * g`` (NaN where unknown). For each evaluation time the caller gives the
inclusive label bounds of the window; sums and counts come from cumulative sums (O(n*K)
whatever the window), minima and maxima from a sparse table of power-of-two windows
(O(n*K*log W)), so a ``[1d]`` window over a day at 60 s costs no more than a ``[5m]`` one.
Everything returns ``[n, T]`` with NaN where the window holds no known bucket; the result
may be a view of ``values`` (callers only read it).

Each ``[n, K]`` temporary is a megabyte for 100 series over a day, and in a gunicorn worker
whose allocator hands freed memory back to the kernel every one of them costs page faults
as well as a pass: columns picked at a regular stride (the usual case, a step that is a
multiple of the granularity) are taken as views, not gathered, and a block with no unknown
bucket (the usual case too) needs no per-series counts or forward fill.
"""

from __future__ import annotations

import numpy as np


def bounds(first: float, g: float, k: int, lo: np.ndarray, hi: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Column indexes ``[a, b]`` of the buckets whose labels lie in ``[lo, hi]`` (per time).

    An empty window has ``b < a``.
    """
    a = np.ceil((lo - first) / g).astype(np.int64)
    b = np.floor((hi - first) / g).astype(np.int64)
    return np.maximum(a, 0), np.minimum(b, k - 1)


def columns(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``values[:, index]`` for indexes within ``[0, K)``: a strided view when the indexes
    are evenly spaced and increasing, a gather otherwise."""
    t = len(index)
    if t and index[0] >= 0 and index[-1] < values.shape[1]:
        start = int(index[0])
        stride = int(index[1] - index[0]) if t > 1 else 1
        if stride > 0 and np.array_equal(index, start + stride * np.arange(t)):
            return values[:, start : start + stride * (t - 1) + 1 : stride]
    return values[:, index]


def _known(values: np.ndarray) -> bool:
    """Whether every bucket is known (one pass, no ``[n, K]`` temporary)."""
    return not np.isnan(np.add.reduce(values, axis=None)) if values.size else True


def _mask_empty(out: np.ndarray, empty: np.ndarray) -> np.ndarray:
    if empty.any():
        out = np.array(out)  # never write through a view of the caller's block
        out[:, empty] = np.nan
    return out


def sum_count(values: np.ndarray, a: np.ndarray, b: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Sum and number of known buckets in each window (the count ``[T]`` when every bucket
    is known, ``[n, T]`` otherwise)."""
    empty = b < a
    a = np.where(empty, 0, a)
    b1 = np.where(empty, 0, b + 1)
    n, k = values.shape
    csum = np.zeros((n, k + 1))
    if _known(values):
        np.cumsum(values, axis=1, out=csum[:, 1:])
        return columns(csum, b1) - columns(csum, a), (b1 - a).astype(float)
    known = ~np.isnan(values)
    np.cumsum(np.where(known, values, 0.0), axis=1, out=csum[:, 1:])
    ccount = np.zeros((n, k + 1), dtype=np.int32)
    np.cumsum(known, axis=1, out=ccount[:, 1:])
    return (columns(csum, b1) - columns(csum, a),
            (columns(ccount, b1) - columns(ccount, a)).astype(float))


def reduce(values: np.ndarray, a: np.ndarray, b: np.ndarray, how: str) -> np.ndarray:
    """``sum``, ``count``, ``avg``, ``min``, ``max`` or ``last`` of each window's known buckets."""
    if how in ("min", "max"):
        return _extreme(values, a, b, np.fmin if how == "min" else np.fmax)
    if how == "last":
        return last(values, a, b)
    total, count = sum_count(values, a, b)
    if how == "count":
        out = np.broadcast_to(count, total.shape).copy()
    elif how == "avg":
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.divide(total, count, out=total)
    else:
        out = total
    none = count == 0
    if none.ndim == 1:
        out[:, none] = np.nan
    else:
        out[none] = np.nan
    return out


def last(values: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The newest known bucket of each window."""
    n, k = values.shape
    if k == 0:
        return np.full((n, len(a)), np.nan)
    empty = (b < 0) | (b < a)
    b = np.clip(b, 0, k - 1)
    if _known(values):  # the newest bucket of a non-empty window is its last one
        return _mask_empty(columns(values, b), empty)
    index = np.where(np.isnan(values), np.int32(-1), np.arange(k, dtype=np.int32))
    np.maximum.accumulate(index, axis=1, out=index)
    at = columns(index, b)
    out = np.take_along_axis(values, np.maximum(at, 0), axis=1)
    out[(at < a) | empty] = np.nan
    return out


def _extreme(values: np.ndarray, a: np.ndarray, b: np.ndarray, op: np.ufunc) -> np.ndarray:
    n, k = values.shape
    length = b - a + 1
    if k == 0 or length.max(initial=0) <= 0:
        return np.full((n, len(a)), np.nan)
    # table[j][:, i] = op over columns [i, i + 2**j)
    table = [values]
    while (1 << len(table)) <= length.max():
        prev, half = table[-1], 1 << (len(table) - 1)
        nxt = prev.copy()
        nxt[:, : k - half] = op(prev[:, : k - half], prev[:, half:])
        table.append(nxt)
    level = np.floor(np.log2(np.maximum(length, 1))).astype(np.int64)
    stack = np.stack(table)  # [levels, n, K]
    a0 = np.clip(a, 0, k - 1)
    b0 = np.clip(b - (1 << level) + 1, 0, k - 1)
    out = op(stack[level, :, a0], stack[level, :, b0]).T  # [n, T]
    return np.where(length > 0, out, np.nan)
