"""Window reductions over bucket arrays: what a selector or ``*_over_time`` sees at each time.

A block is ``values[n, K]``, one row per series, column ``i`` the bucket labelled
``first + i * g`` (NaN where unknown). For each evaluation time the caller gives the
inclusive label bounds of the window; sums and counts come from cumulative sums (O(n*K)
whatever the window), minima and maxima from a sparse table of power-of-two windows
(O(n*K*log W)), so a ``[1d]`` window over a day at 60 s costs no more than a ``[5m]`` one.
Everything returns ``[n, T]`` with NaN where the window holds no known bucket.
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


def _prefix(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    known = ~np.isnan(values)
    n = values.shape[0]
    csum = np.zeros((n, values.shape[1] + 1))
    np.cumsum(np.where(known, values, 0.0), axis=1, out=csum[:, 1:])
    ccount = np.zeros((n, values.shape[1] + 1))
    np.cumsum(known, axis=1, out=ccount[:, 1:])
    return csum, ccount


def sum_count(values: np.ndarray, a: np.ndarray, b: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Sum and number of known buckets in each window."""
    empty = b < a
    a = np.where(empty, 0, a)
    b1 = np.where(empty, 0, b + 1)
    csum, ccount = _prefix(values)
    return csum[:, b1] - csum[:, a], ccount[:, b1] - ccount[:, a]


def reduce(values: np.ndarray, a: np.ndarray, b: np.ndarray, how: str) -> np.ndarray:
    """``sum``, ``count``, ``avg``, ``min``, ``max`` or ``last`` of each window's known buckets."""
    if how in ("min", "max"):
        return _extreme(values, a, b, np.fmin if how == "min" else np.fmax)
    if how == "last":
        return last(values, a, b)
    total, count = sum_count(values, a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {"sum": total, "count": count, "avg": total / count}[how]
    return np.where(count > 0, out, np.nan)


def last(values: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The newest known bucket of each window."""
    n, k = values.shape
    if k == 0:
        return np.full((n, len(a)), np.nan)
    index = np.where(np.isnan(values), -1, np.arange(k))
    newest = np.maximum.accumulate(index, axis=1)
    at = newest[:, np.clip(b, 0, k - 1)]
    ok = (b >= 0) & (b >= a) & (at >= a)
    rows = np.arange(n)[:, None]
    return np.where(ok, values[rows, np.maximum(at, 0)], np.nan)


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
