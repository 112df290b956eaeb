"""Reductions that ignore missing points (NaN): mean, median, min, max, sum, count, std, var.

Each takes a 2-D array and an axis; a slice with no known value reduces to NaN (``count``: 0).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np


def _quiet(fn: Callable[..., np.ndarray]) -> Callable[[np.ndarray, int], np.ndarray]:
    """numpy warns on all-NaN slices; for us that is simply an unknown point."""

    def reduce(values: np.ndarray, axis: int) -> np.ndarray:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            return fn(values, axis=axis)

    return reduce


def _sum(values: np.ndarray, axis: int) -> np.ndarray:
    known = np.any(~np.isnan(values), axis=axis)
    return np.where(known, np.nansum(values, axis=axis), np.nan)


def _count(values: np.ndarray, axis: int) -> np.ndarray:
    return np.sum(~np.isnan(values), axis=axis).astype(float)


REDUCERS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "mean": _quiet(np.nanmean),
    "median": _quiet(np.nanmedian),
    "min": _quiet(np.nanmin),
    "max": _quiet(np.nanmax),
    "sum": _sum,
    "count": _count,
    "std": _quiet(np.nanstd),
    "var": _quiet(np.nanvar),
}
