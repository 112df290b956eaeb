"""Fast JSON in and out (orjson), and Gnocchi's ISO 8601 timestamps without per-point cost.

Measures dominate the API's traffic: a day at one minute is 1,440 points, a batch write tens
of thousands. orjson parses and serialises them ~10x faster than the json module, and the
ISO strings of bucket timestamps (which repeat across metrics and requests: they sit on a
grid) come from a bounded cache.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import math
from typing import Any

import numpy as np
import orjson
from flask import Response, request

from appliance.web.api.errors import ApiError

_ISO_CACHE: dict[float, str] = {}
_ISO_CACHE_MAX = 200_000


def iso(ts: float) -> str:
    """Epoch seconds -> ``2024-01-01T12:00:00+00:00`` (Gnocchi's shape), cached."""
    text = _ISO_CACHE.get(ts)
    if text is None:
        if len(_ISO_CACHE) >= _ISO_CACHE_MAX:
            _ISO_CACHE.clear()
        text = _ISO_CACHE[ts] = dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()
    return text


def iso_many(times: np.ndarray) -> list[str]:
    """ISO strings of many timestamps; a regular grid (RRD buckets) is computed once, cached."""
    grid = _grid(times)
    if grid is not None:
        return _iso_grid(*grid)
    return [iso(t) for t in times.tolist()]


def _grid(times: np.ndarray) -> tuple[float, float, int] | None:
    """``(first, step, count)`` when the timestamps are a regular grid of whole seconds."""
    n = len(times)
    if n > 1 and float(times[0]).is_integer():
        step = float(times[1] - times[0])
        if step > 0 and step.is_integer() and times[-1] == times[0] + step * (n - 1):
            return float(times[0]), step, n
    return None


@functools.lru_cache(maxsize=64)  # as many as _heads: ~7 MB of strings for a day at a minute
def _iso_grid(first: float, step: float, count: int) -> list[str]:
    seconds = (first + step * np.arange(count)).astype("datetime64[s]")
    return [text + "+00:00" for text in np.datetime_as_string(seconds, unit="s").tolist()]


@functools.lru_cache(maxsize=64)  # 64 grids of a day at a minute: ~10 MB
def _heads(first: float, step: float, count: int, granularity: float) -> list[orjson.Fragment]:
    """``"<ISO timestamp>",<granularity>`` of each bucket as pre-encoded JSON.

    Formatting a float is most of what orjson spends on a measure, and the granularity is
    the same float on every point: encoded once here, it is copied instead.
    """
    tail = b'",' + orjson.dumps(granularity)
    return [orjson.Fragment(b'"' + text.encode() + tail)
            for text in _iso_grid(first, step, count)]


def points(times: np.ndarray, values: np.ndarray, granularity: float,
           dropna: bool = True) -> list[tuple]:
    """Gnocchi's ``[timestamp, granularity, value]`` triples with no per-point Python.

    Unknown points (NaN) are dropped, or sent as ``null`` when ``dropna`` is false. The
    result is for :func:`orjson.dumps` only: on a regular grid each triple is a pair of
    (timestamp and granularity as one JSON fragment, value), which it writes as the triple.
    """
    grid = _grid(times)
    if grid is not None:
        stamps: list = _heads(*grid, granularity)
        columns: tuple = (stamps,)
    else:
        stamps = iso_many(times)
        columns = (stamps, itertools.repeat(granularity))
    if dropna:
        known = ~np.isnan(values)
        if known.all():
            return list(zip(*columns, values.tolist(), strict=False))
        kept = itertools.compress(stamps, known.tolist())
        return list(zip(kept, *columns[1:], values[known].tolist(), strict=False))
    listed = values.tolist()
    if not np.isfinite(values).all():
        # JSON has no NaN or infinity: an unknown or undefined point is null.
        listed = [v if math.isfinite(v) else None for v in listed]
    return list(zip(*columns, listed, strict=False))


def encode(body: Any) -> bytes:
    """Every API body's bytes: one encoder for Flask responses and the GET fast path."""
    return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)


def response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        encode(body),
        status=status,
        mimetype="application/json",
        headers=headers,
    )


def body() -> Any:
    """The request's JSON body, or a 415/400 that says what is wrong with it."""
    if request.mimetype != "application/json":
        raise ApiError(415, "The request body must be JSON (Content-Type: application/json)")
    data = request.get_data()
    if not data:
        raise ApiError(400, "The request body is empty; JSON is required")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"The request body is not valid JSON: {exc}") from None
