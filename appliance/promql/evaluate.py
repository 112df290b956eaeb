"""Evaluate a plan at many times at once over arrays read from a :class:`Source`.

How buckets stand in for samples (README, "Prometheus query API", says the same):

- a gauge bucket labelled ``L`` is a sample at ``L``: an instant selector at ``t`` takes the
  newest known bucket in ``[t - lookback, t]`` (5 minutes, or two buckets if longer), and
  ``*_over_time(x[r])`` the buckets in ``[t - r, t]``, as Prometheus 2.42 takes samples;
- a counter is stored as a per-second rate (RRD DERIVE); its bucket ``L`` is the rate over
  ``(L - g, L]``, so ``rate(x[r])`` is the mean of the buckets whose interval lies inside
  ``[t - r, t]``, ``increase`` that mean times ``r`` and ``irate`` the newest such bucket.
  The raw counter value is not kept, so a counter is only readable through those three.

With samples on bucket boundaries these equal Prometheus' answers (tests/test_promql_vs_
prometheus.py); otherwise they differ by at most one bucket's aggregation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from appliance.promql import aggregate, windows
from appliance.promql.model import Block, Scalar, SeriesInfo, Source, Vector
from appliance.promql.plan import (
    COMPARISONS,
    OVER_TIME,
    RATE_FUNCTIONS,
    Aggregate,
    Binary,
    Call,
    Negate,
    Number,
    QueryError,
    Selector,
    Unsupported,
)

LOOKBACK = 300.0  # Prometheus' default --query.lookback-delta
#: Which stored aggregation a range function reads (the source falls back to the mean).
METHOD_FOR = {"min_over_time": "min", "max_over_time": "max", "last_over_time": "last"}


@dataclass
class Context:
    source: Source
    times: np.ndarray  # evaluation times, seconds
    step: float
    warnings: list[str] = field(default_factory=list)


def evaluate(plan: object, source: Source, times: np.ndarray, step: float
             ) -> tuple[Scalar | Vector, list[str]]:
    """The value of ``plan`` at every time in ``times``, and the warnings it produced."""
    ctx = Context(source, np.asarray(times, dtype=float), step)
    value = _eval(plan, ctx)
    if isinstance(value, Vector):
        keep = ~np.all(np.isnan(value.values), axis=1)
        if not keep.all():  # a copy only when a series really goes
            value = Vector([lab for lab, k in zip(value.labels, keep, strict=True) if k],
                           value.values[keep])
        seen: set[frozenset] = set()
        for lab in value.labels:
            key = frozenset(lab.items())
            if key in seen:
                raise QueryError(f"vector cannot contain metrics with the same labelset {lab}")
            seen.add(key)
    return value, list(dict.fromkeys(ctx.warnings))


def _eval(node: object, ctx: Context) -> Scalar | Vector:
    if isinstance(node, Number):
        return Scalar(np.full(len(ctx.times), node.value))
    if isinstance(node, Negate):
        value = _eval(node.expr, ctx)
        if isinstance(value, Scalar):
            return Scalar(-value.values)
        return Vector(_drop_name(value.labels), -value.values)
    if isinstance(node, Selector):
        if node.range:
            raise Unsupported("a range vector as a query's result is not supported; "
                              "wrap it in a function such as rate() or avg_over_time()")
        return _instant_selector(node, ctx)
    if isinstance(node, Call):
        return _call(node, ctx)
    if isinstance(node, Aggregate):
        param = _eval(node.param, ctx) if node.param is not None else None
        if param is not None and not isinstance(param, Scalar):
            raise QueryError(f"{node.op}(): the parameter must be a scalar")
        return aggregate.aggregate(node, _vector(node.expr, ctx, node.op),
                                   None if param is None else param.values)
    if isinstance(node, Binary):
        return _binary(node, _eval(node.lhs, ctx), _eval(node.rhs, ctx))
    raise Unsupported(f"{type(node).__name__} is not supported")


def _vector(node: object, ctx: Context, where: str) -> Vector:
    value = _eval(node, ctx)
    if not isinstance(value, Vector):
        raise QueryError(f"{where}(): expected an instant vector, got a scalar")
    return value


def _select(sel: Selector, ctx: Context, counters: bool, method: str, back: float
            ) -> tuple[list[SeriesInfo], list[Block]]:
    """The selected series and their buckets covering ``back`` seconds before each time."""
    found = ctx.source.select(sel.matchers)
    series = [s for s in found if s.counter == counters]
    if len(series) < len(found):
        name = next(s for s in found if s.counter != counters).labels.get("__name__", "?")
        if counters:
            problem = (f"rate(), irate() and increase() need a counter (a *_total series); "
                       f"{name} is a gauge")
        else:
            problem = (f"{name} is a counter, stored as a rate: read it with rate(), irate() "
                       "or increase()")
        if not series:  # nothing this selector can give: say why
            raise Unsupported(problem)
        ctx.warnings.append(f"{len(found) - len(series)} series left out: {problem}")
    if not series:
        return [], []
    times = ctx.times - sel.offset
    blocks, warnings = ctx.source.read(series, method, float(times[0]) - back,
                                       float(times[-1]), ctx.step)
    ctx.warnings.extend(warnings)
    return series, blocks


def _instant_selector(sel: Selector, ctx: Context) -> Vector:
    series, blocks = _select(sel, ctx, False, "mean", LOOKBACK)
    times = ctx.times - sel.offset
    parts = []
    for b in blocks:
        # At the live edge the newest bucket completes one granularity late: two buckets
        # back keep a coarse archive's series from blinking out between completions.
        lookback = max(LOOKBACK, 2 * b.granularity)
        lo, hi = windows.bounds(b.first, b.granularity, b.values.shape[1], times - lookback,
                                times)
        parts.append((b.rows, windows.last(b.values, lo, hi)))
    return Vector([s.labels for s in series], _assemble(parts, len(series), len(times)))


def _assemble(parts: list[tuple[list[int], np.ndarray]], n: int, t: int) -> np.ndarray:
    """One ``[n, T]`` array from blocks' rows; a single block holding every series in
    order is used as it is (no second day-sized array per panel)."""
    if len(parts) == 1 and parts[0][0] == list(range(n)):
        return parts[0][1]
    out = np.full((n, t), np.nan)
    for rows, values in parts:
        out[rows] = values
    return out


def _range_function(call: Call, ctx: Context) -> Vector:
    sel: Selector = call.args[0]
    counters = call.func in RATE_FUNCTIONS
    series, blocks = _select(sel, ctx, counters, METHOD_FOR.get(call.func, "mean"), sel.range)
    times = ctx.times - sel.offset
    parts = []
    for b in blocks:
        g = b.granularity
        span = sel.range
        if span < g:
            ctx.warnings.append(f"range [{span:g}s] is shorter than the {g:g} s buckets "
                                f"it reads; one bucket is used")
            span = g
        # A rate bucket covers (L - g, L]: only those wholly inside [t - r, t] count.
        lo = times - span + (g if counters else 0.0)
        a, z = windows.bounds(b.first, g, b.values.shape[1], lo, times)
        if call.func == "irate":
            value = windows.last(b.values, a, z)
        elif counters:
            value = windows.reduce(b.values, a, z, "avg")
            if call.func == "increase":
                value *= span
        else:
            value = windows.reduce(b.values, a, z, call.func.removesuffix("_over_time"))
        parts.append((b.rows, value))
    out = _assemble(parts, len(series), len(times))
    labels = [s.labels for s in series]
    # Prometheus keeps the name through last_over_time only (a value, not a derivation).
    return Vector(labels if call.func == "last_over_time" else _drop_name(labels), out)


def _call(call: Call, ctx: Context) -> Scalar | Vector:
    name = call.func
    if name in RATE_FUNCTIONS or name in OVER_TIME:
        return _range_function(call, ctx)
    if name == "time":
        return Scalar(ctx.times.copy())
    args = [_eval(a, ctx) for a in call.args]
    if name == "vector":
        return Vector([{}], _scalar_arg(args[0], name)[None, :].copy())
    vec = args[0]
    if not isinstance(vec, Vector):
        raise QueryError(f"{name}(): expected an instant vector, got a scalar")
    if name == "scalar":
        present = (~np.isnan(vec.values)).sum(axis=0)
        one = np.nansum(np.where(np.isnan(vec.values), 0.0, vec.values), axis=0)
        return Scalar(np.where(present == 1, one, np.nan))
    v = vec.values
    if name == "abs":
        out = np.abs(v)
    elif name == "round":
        nearest = _scalar_arg(args[1], name) if len(args) > 1 else np.ones(len(ctx.times))
        inverse = 1.0 / nearest
        out = np.floor(v * inverse + 0.5) / inverse
    elif name == "clamp":
        lo, hi = _scalar_arg(args[1], name), _scalar_arg(args[2], name)
        out = np.where(lo > hi, np.nan, np.fmax(lo, np.fmin(hi, v)))
        out = np.where(np.isnan(v), np.nan, out)
    elif name == "clamp_min":
        out = np.where(np.isnan(v), np.nan, np.fmax(v, _scalar_arg(args[1], name)))
    else:  # clamp_max
        out = np.where(np.isnan(v), np.nan, np.fmin(v, _scalar_arg(args[1], name)))
    return Vector(_drop_name(vec.labels), out)


def _scalar_arg(value: Scalar | Vector, where: str) -> np.ndarray:
    if not isinstance(value, Scalar):
        raise QueryError(f"{where}(): expected a scalar argument, got an instant vector")
    return value.values


def _drop_name(labels: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in lab.items() if k != "__name__"} for lab in labels]


def _apply(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return np.true_divide(a, b)
        if op == "%":
            return np.fmod(a, b)
        if op == "^":
            return np.power(a, b)
        return {"==": np.equal, "!=": np.not_equal, ">": np.greater, "<": np.less,
                ">=": np.greater_equal, "<=": np.less_equal}[op](a, b).astype(float)


def _binary(node: Binary, lhs: Scalar | Vector, rhs: Scalar | Vector) -> Scalar | Vector:
    op, comparison = node.op, node.op in COMPARISONS
    if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
        if comparison and not node.bool:
            raise QueryError("comparisons between scalars must use the bool modifier")
        return Scalar(_apply(op, lhs.values, rhs.values))
    if isinstance(lhs, Vector) and isinstance(rhs, Vector):
        return _vector_vector(node, lhs, rhs)
    vec, scalar = (lhs, rhs) if isinstance(lhs, Vector) else (rhs, lhs)
    a, b = (vec.values, scalar.values[None, :]) if vec is lhs else (scalar.values[None, :],
                                                                    vec.values)
    result = _apply(op, a, b)
    if comparison and not node.bool:  # a filter: keep the vector's own value
        return Vector(vec.labels, np.where(result == 1.0, vec.values, np.nan))
    return Vector(_drop_name(vec.labels), result)


def _signature(labels: dict[str, str], node: Binary) -> tuple:
    if node.on is not None:
        return tuple((k, labels.get(k, "")) for k in node.on)
    return tuple(sorted((k, v) for k, v in labels.items()
                        if k != "__name__" and k not in node.ignoring))


def _vector_vector(node: Binary, lhs: Vector, rhs: Vector) -> Vector:
    right: dict[tuple, int] = {}
    for i, lab in enumerate(rhs.labels):
        sig = _signature(lab, node)
        if sig in right:
            raise QueryError("found duplicate series for the match group on the right hand "
                             "side of the operation; many-to-many matching is not supported")
        right[sig] = i
    labels, left_rows, right_rows, seen = [], [], [], set()
    for i, lab in enumerate(lhs.labels):
        j = right.get(_signature(lab, node))
        if j is None:
            continue
        sig = _signature(lab, node)
        if sig in seen:
            raise QueryError("found duplicate series for the match group on the left hand "
                             "side of the operation; many-to-one matching is not supported")
        seen.add(sig)
        out = dict(lab)
        if node.on is not None:
            out = {k: v for k, v in out.items() if k in node.on}
        else:
            out = {k: v for k, v in out.items() if k not in node.ignoring}
        labels.append(out)
        left_rows.append(i)
        right_rows.append(j)
    a = lhs.values[left_rows]
    b = rhs.values[right_rows]
    both = ~(np.isnan(a) | np.isnan(b))
    result = _apply(node.op, a, b)
    if node.op in COMPARISONS and not node.bool:
        return Vector(labels, np.where(both & (result == 1.0), a, np.nan))
    return Vector(_drop_name(labels), np.where(both, result, np.nan))
