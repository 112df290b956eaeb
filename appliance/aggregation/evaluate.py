"""Evaluate an operation tree over plain series: arrays in, arrays out, no I/O.

The series of one granularity are laid on one grid (timestamps x series, NaN where a series
has no point), the overlap rule is applied as Gnocchi does (``needed_overlap`` percent of the
timestamps must have a value in every series, unless ``fill`` says how to fill the gaps),
then the tree is evaluated on the grid. Series read from RRD with one start/stop/step share
their timestamps already, so building the grid is a stack, not a merge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from appliance.aggregation.operations import OperationError
from appliance.aggregation.reducers import REDUCERS

Fill = float | str | None  # a number, "null", "dropna" or None (no filling)


class UnAggregable(OperationError):
    """The series cannot be combined (no common granularity, not enough overlap)."""


@dataclass(slots=True)
class Series:
    """One input: ``key`` is the ``(ref, aggregation)`` a ``metric`` node names it by."""

    key: tuple[str, str]
    granularity: float
    times: np.ndarray  # float64 epoch seconds (bucket starts), increasing
    values: np.ndarray  # float64, NaN where unknown


@dataclass(slots=True)
class Block:
    """The result at one granularity; ``columns`` index the inputs each column came from."""

    granularity: float
    times: np.ndarray
    values: np.ndarray  # shape (len(times), len(columns))
    columns: list[int]
    aggregated: bool


@dataclass(slots=True)
class _Value:
    granularity: float
    times: np.ndarray
    values: np.ndarray
    columns: list[int]
    aggregated: bool


def evaluate(
    tree: list,
    series: list[Series],
    start: float | None = None,
    stop: float | None = None,
    needed_overlap: float = 100.0,
    fill: Fill = None,
) -> list[Block]:
    """Evaluate ``tree`` at every granularity present in ``series``, coarsest first."""
    by_granularity: dict[float, list[int]] = {}
    for i, s in enumerate(series):
        by_granularity.setdefault(s.granularity, []).append(i)
    keys = [s.key for s in series]
    out = []
    for granularity in sorted(by_granularity, reverse=True):
        idx = by_granularity[granularity]
        times, values = _grid([series[i] for i in idx], fill)
        times, values = _overlap(times, values, start, stop, needed_overlap, fill, keys, idx)
        result = _eval(tree, _Value(granularity, times, values, idx, False), keys)
        if not isinstance(result, _Value):
            raise OperationError("operations must produce series, not a number")
        out.append(Block(result.granularity, result.times, result.values, result.columns,
                         result.aggregated))
    return out


def _grid(series: list[Series], fill: Fill) -> tuple[np.ndarray, np.ndarray]:
    first = series[0].times
    if all(s.times.shape == first.shape and np.array_equal(s.times, first) for s in series):
        times = first
        # Stacking rows is a contiguous copy per series; the transpose is a free view.
        values = np.stack([s.values for s in series]).astype(float, copy=False).T
    else:
        times = np.unique(np.concatenate([s.times for s in series]))
        values = np.full((len(times), len(series)), np.nan)
        for i, s in enumerate(series):
            values[np.searchsorted(times, s.times), i] = s.values
    # A timestamp where no series has a point does not exist (RRD reports it as unknown).
    present = ~np.all(np.isnan(values), axis=1)
    if not present.all():
        times, values = times[present], values[present]
    if isinstance(fill, float | int) and not isinstance(fill, bool):
        values = np.where(np.isnan(values), float(fill), values)
    return times, values


def _overlap(
    times: np.ndarray,
    values: np.ndarray,
    start: float | None,
    stop: float | None,
    needed: float,
    fill: Fill,
    keys: list[tuple[str, str]],
    idx: list[int],
) -> tuple[np.ndarray, np.ndarray]:
    if fill is not None:
        return times, values
    full = np.flatnonzero(~np.any(np.isnan(values), axis=1))
    names = ", ".join(f"{keys[i][0]}/{keys[i][1]}" for i in idx[:10])
    if full.size == 0:
        if needed > 0 and times.size:
            raise UnAggregable(f"No overlap between the series ({names})")
        return times, values
    if stop is None:
        times, values = times[: full[-1] + 1], values[: full[-1] + 1]
    if start is None:
        times, values = times[full[0] :], values[full[0] :]
    percent = 100.0 * np.count_nonzero(~np.any(np.isnan(values), axis=1)) / max(times.size, 1)
    if percent < needed:
        raise UnAggregable(
            f"Less than {needed:g}% of the points overlap in this timespan ({percent:.2f}%) "
            f"({names})"
        )
    return times, values


def _eval(node, grid: _Value, keys: list[tuple[str, str]]):
    if isinstance(node, float):
        return node
    op = node[0]
    if op == "metric":
        wanted = set(node[1:])
        pos = [i for i, c in enumerate(grid.columns) if keys[c] in wanted]
        cols = [grid.columns[i] for i in pos]
        values = grid.values if len(pos) == len(grid.columns) else grid.values[:, pos]
        return _Value(grid.granularity, grid.times, values, cols, False)
    if op == "aggregate":
        sub = _series(_eval(node[2], grid, keys), op)
        reduced = REDUCERS[node[1]](sub.values, 1)[:, None]
        return _Value(sub.granularity, sub.times, reduced, sub.columns[:1], True)
    if op == "resample":
        return _resample(node[1], node[2], _series(_eval(node[3], grid, keys), op))
    if op == "rolling":
        return _rolling(node[1], node[2], _series(_eval(node[3], grid, keys), op))
    if len(node) == 2:
        return _unary(op, _eval(node[1], grid, keys))
    return _binary(op, _eval(node[1], grid, keys), _eval(node[2], grid, keys))


def _series(value, op: str) -> _Value:
    if not isinstance(value, _Value):
        raise OperationError(f"{op!r} needs series, not a number")
    return value


def _resample(method: str, granularity: float, v: _Value) -> _Value:
    buckets = np.floor(v.times / granularity) * granularity
    times, starts = np.unique(buckets, return_index=True)
    if not times.size:
        return _Value(granularity, times, v.values, v.columns, v.aggregated)
    groups = np.split(v.values, starts[1:], axis=0)
    reduce = REDUCERS[method]
    values = np.vstack([reduce(g, 0) for g in groups])
    return _Value(granularity, times, values, v.columns, v.aggregated)


def _rolling(method: str, window: int, v: _Value) -> _Value:
    if v.times.size < window:
        empty = np.empty((0, v.values.shape[1]))
        return _Value(v.granularity, v.times[:0], empty, v.columns, v.aggregated)
    windows = sliding_window_view(v.values, window, axis=0)  # (T - w + 1, C, w)
    values = REDUCERS[method](windows, 2)
    return _Value(v.granularity, v.times[window - 1 :], values, v.columns, v.aggregated)


_UFUNCS = {
    "+": np.add, "add": np.add, "-": np.subtract, "sub": np.subtract,
    "*": np.multiply, "mul": np.multiply, "/": np.true_divide, "div": np.true_divide,
    "truediv": np.true_divide, "**": np.power, "pow": np.power,
    "abs": np.absolute, "absolute": np.absolute, "neg": np.negative, "negative": np.negative,
}


def _unary(op: str, value):
    with np.errstate(all="ignore"):
        if isinstance(value, float):
            return float(_UFUNCS[op](value))
        return _Value(value.granularity, value.times, _UFUNCS[op](value.values), value.columns,
                      value.aggregated)


def _binary(op: str, left, right):
    fn = _UFUNCS[op]
    with np.errstate(all="ignore"):
        if isinstance(left, float) and isinstance(right, float):
            return float(fn(left, right))
        if isinstance(right, float):
            return _Value(left.granularity, left.times, fn(left.values, right), left.columns,
                          left.aggregated)
        if isinstance(left, float):
            return _Value(right.granularity, right.times, fn(left, right.values), right.columns,
                          right.aggregated)
        if left.granularity != right.granularity:
            raise UnAggregable(f"cannot combine granularities {left.granularity:g} and "
                               f"{right.granularity:g} with {op!r}")
        lw, rw = left.values.shape[1], right.values.shape[1]
        if lw != rw and 1 not in (lw, rw):
            raise UnAggregable(f"cannot combine {lw} series with {rw} series with {op!r}")
        times, li, ri = np.intersect1d(left.times, right.times, return_indices=True)
        values = fn(left.values[li], right.values[ri])
        columns = left.columns if lw >= rw else right.columns
        return _Value(left.granularity, times, values, columns,
                      left.aggregated or right.aggregated)
