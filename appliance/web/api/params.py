"""Parsing and validating request input at the edge; every failure names its parameter."""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from typing import Any

from flask import request
from pydantic import BaseModel, TypeAdapter, ValidationError
from werkzeug.datastructures import MultiDict

from appliance.validation import describe
from appliance.web.api import jsonio
from appliance.web.api.errors import ApiError, bad_param

AGGREGATIONS = ("mean", "min", "max", "last")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|second|seconds|m|min|minute|minutes|"
                       r"h|hour|hours|d|day|days)?\s*$")
_UNIT_SECONDS = {"s": 1, "sec": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "minute": 60,
                 "minutes": 60, "h": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400,
                 "days": 86400}


def iso(ts: float | None) -> str | None:
    """Epoch seconds -> Gnocchi's ISO 8601 (``2024-01-01T12:00:00+00:00``)."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


#: Timestamps outside 1970..2100 are refused (RRD and graphs need a sane time_t).
MAX_TIMESTAMP = 4102444800.0


def parse_timestamp(name: str, value: str) -> float:
    """ISO 8601 (naive means UTC), epoch seconds, or ``-N <unit>`` relative to now."""
    ts = _timestamp(name, value)
    if not 0.0 <= ts <= MAX_TIMESTAMP:
        raise bad_param(name, f"{value!r} is outside 1970..2100")
    return ts


def _timestamp(name: str, value: str) -> float:
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None:
        if not math.isfinite(number):
            raise bad_param(name, f"{value!r} is not a finite timestamp")
        return number
    if text.startswith("-"):
        try:
            return dt.datetime.now(dt.UTC).timestamp() - parse_duration(name, text[1:])
        except ApiError:
            pass
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        raise bad_param(name, f"{value!r} is not an ISO 8601 or epoch timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def parse_duration(name: str, value: Any) -> float:
    """Seconds from a number or ``"5 minutes"``/``"1h"``; Gnocchi also prints ``H:MM:SS``."""
    try:
        return duration_seconds(value)
    except ValueError as exc:
        raise bad_param(name, str(exc)) from None


def duration_seconds(value: Any) -> float:
    """:func:`parse_duration` without a parameter name: ValueError says what is wrong."""
    if isinstance(value, bool):
        raise ValueError("not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value)
        if re.fullmatch(r"\d+:\d\d:\d\d", text.strip()):
            h, m, s = (int(x) for x in text.strip().split(":"))
            seconds = float(h * 3600 + m * 60 + s)
        else:
            match = _DURATION.match(text)
            if not match:
                raise ValueError(f"{value!r} is not a duration")
            seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError("must be a positive duration")
    return seconds


def parse_uuid(name: str, value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        raise bad_param(name, f"{value!r} is not a UUID") from None


def parse_aggregation(value: str | None) -> str:
    value = value or "mean"
    if value.startswith("rate:"):
        value = value[5:]  # cumulative meters are stored as rates already
    if value not in AGGREGATIONS:
        raise bad_param("aggregation", f"{value!r} is not one of {', '.join(AGGREGATIONS)}")
    return value


def parse_int(name: str, value: str | None, default: int, lo: int, hi: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise bad_param(name, f"{value!r} is not an integer") from None
    if not lo <= number <= hi:
        raise bad_param(name, f"must be between {lo} and {hi}")
    return number


def arg(name: str, args: MultiDict[str, str] | None = None) -> str | None:
    """A query parameter (of this request's, or of ``args``), or None; a parameter given
    twice is an error."""
    values = (request.args if args is None else args).getlist(name)
    if len(values) > 1:
        raise bad_param(name, "given more than once")
    return values[0] if values else None


_NO_BODY = object()


def body_as(model: Any, data: Any = _NO_BODY, where: str = "") -> Any:
    """The request's JSON body (or ``data``) checked and converted by ``model``, a pydantic
    model class or TypeAdapter; a 400 naming the field's path (under ``where``) otherwise."""
    if data is _NO_BODY:
        data = jsonio.body()
    try:
        if isinstance(model, TypeAdapter):
            return model.validate_python(data)
        if isinstance(model, type) and issubclass(model, BaseModel):
            return model.model_validate(data)
        raise TypeError(f"{model!r} is not a model class or TypeAdapter")
    except ValidationError as exc:
        raise ApiError(400, describe(exc, where)) from None


def bool_arg(name: str, default: bool = False, args: MultiDict[str, str] | None = None) -> bool:
    value = arg(name, args)
    if value is None:
        return default
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise bad_param(name, f"{value!r} is not a boolean")
