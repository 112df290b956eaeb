"""Measures pushed through the API: validate cheaply, write in one batch, report rejections.

Gnocchi answers a measures write with 202 and no body. The appliance writes synchronously,
so it knows at once which measures RRD refused (a timestamp not newer than the metric's last
one): the 202 carries ``{"accepted": N, "rejected": [...]}`` so nothing is dropped silently.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from flask import Response
from pydantic import BaseModel, Field

from appliance.model import Metric
from appliance.web.api import jsonio
from appliance.web.api.errors import bad_param
from appliance.web.api.params import MAX_TIMESTAMP, parse_timestamp
from appliance.web.context import get_store

#: At most this many rejected measures are listed one by one (all are counted).
MAX_REJECTED_LISTED = 1000


class Rejected(BaseModel):
    metric_id: str
    timestamp: str
    reason: str


class WriteReport(BaseModel):
    """Gnocchi answers 202 without a body; the appliance lists what RRD refused
    (timestamps not newer than the metric's last one)."""

    accepted: int
    rejected_count: int
    rejected: list[Rejected] = Field(max_length=MAX_REJECTED_LISTED)


class TimestampParser:
    """Timestamps of one request, each distinct text parsed once (batches repeat them)."""

    def __init__(self) -> None:
        self.seen: dict[Any, float] = {}

    def __call__(self, name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise bad_param(name, "must be an ISO 8601 string or epoch seconds")
        if isinstance(value, str):
            ts = parse_timestamp(name, value)
        elif 0.0 <= value <= MAX_TIMESTAMP:
            ts = float(value)
        else:
            raise bad_param(name, "must be epoch seconds between 1970 and 2100")
        self.seen[value] = ts
        return ts


def parse_measures(name: str, items: Any, timestamps: TimestampParser) -> list[tuple[float, float]]:
    """``[{"timestamp": ..., "value": ...}, ...]`` -> ``[(epoch, value), ...]``."""
    if not isinstance(items, list):
        raise bad_param(name, "must be a list of {\"timestamp\", \"value\"} objects")
    # The hot loop of every batch write: names for errors are built only on an error.
    out = []
    append, seen, isfinite = out.append, timestamps.seen, math.isfinite
    for i, item in enumerate(items):
        try:
            raw, value = item["timestamp"], item["value"]
        except (TypeError, KeyError, IndexError):
            raise bad_param(f"{name}[{i}]", "must be an object with timestamp and value") from None
        if type(value) is not float or not isfinite(value):
            value = _number(f"{name}[{i}].value", value)
        try:
            ts = seen[raw]
        except (KeyError, TypeError):
            ts = timestamps(f"{name}[{i}].timestamp", raw)
        append((ts, value))
    return out


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise bad_param(name, "must be a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise bad_param(name, f"{value!r} is not a number") from None
    if not math.isfinite(number):
        raise bad_param(name, "must be a finite number")
    return number


def write(items: Iterable[tuple[Metric, Sequence[tuple[float, float]]]]) -> Response:
    """One ``Store.write_measures`` call; a 202 that lists what was rejected."""
    outcome = get_store().write_measures(items)
    rejected = [
        {"metric_id": r.metric_id, "timestamp": jsonio.iso(r.timestamp), "reason": r.reason}
        for r in outcome.rejected[:MAX_REJECTED_LISTED]
    ]
    return jsonio.response(
        {"accepted": outcome.accepted, "rejected_count": len(outcome.rejected),
         "rejected": rejected},
        202,
    )
