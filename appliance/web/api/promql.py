"""The Prometheus HTTP query API (``/api/v1/...``) over the appliance's own RRD files.

Grafana's built-in Prometheus datasource, promtool and any Prometheus client read the
appliance directly. Request and response shapes are Prometheus' (GET or form-encoded POST;
``{"status", "data", "warnings"}``; errors ``{"status": "error", "errorType", "error"}``,
with the appliance's own ``title``/``description``/``code`` beside them). The PromQL subset
and how buckets stand in for samples: :mod:`appliance.promql` and the README.
"""

from __future__ import annotations

import math
import time
from datetime import datetime

import numpy as np
import orjson
import promql_parser
from flask import Blueprint, Response, request

from appliance import __version__
from appliance.promql import QueryError, Scalar, SeriesInfo, Unsupported, evaluate, parse
from appliance.promql import format_query as pretty
from appliance.promql.plan import Selector
from appliance.web.api.openapi import operation, query
from appliance.web.api.prometheus import help_text
from appliance.web.api.promql_source import StoreSource
from appliance.web.context import get_store

bp = Blueprint("promql", __name__, url_prefix="/api/v1")
#: Prometheus refuses a range query of more points per series than this.
MAX_POINTS = 11000
#: The Prometheus release whose API this one follows (Grafana reads it from buildinfo).
API_VERSION = "2.42.0"
BOTH = ("GET", "POST")
#: An instant query reads the archive that would serve a range query at this step.
INSTANT_STEP = 60.0


#: Prometheus' answer: ``status`` and ``data`` (shape per endpoint), maybe ``warnings``.
ANSWER = {"type": "object", "required": ["status", "data"], "properties": {
    "status": {"const": "success"}, "data": {},
    "warnings": {"type": "array", "items": {"type": "string"}}}}
TEXT = {"type": "string"}


def _required(name: str, description: str = "") -> dict:
    return {**query(name, TEXT, description), "required": True}


MATCH = query("match[]", {"type": "array", "items": TEXT}, "series selectors")
SPAN = (query("start", TEXT, "RFC 3339 or Unix time"), query("end", TEXT, "likewise"))


class BadData(Exception):
    """A Prometheus ``bad_data`` (400) or ``execution`` (422) error."""

    def __init__(self, message: str, kind: str = "bad_data", status: int = 400):
        super().__init__(message)
        self.kind, self.status = kind, status


@bp.errorhandler(BadData)
def _bad(exc: BadData) -> Response:
    title = "Bad Request" if exc.status == 400 else "Unprocessable Entity"
    return _json({"status": "error", "errorType": exc.kind, "error": str(exc),
                  "title": title, "description": str(exc), "code": exc.status}, exc.status)


def _json(body: dict, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def _success(data: object, warnings: list[str] | None = None) -> Response:
    body: dict = {"status": "success", "data": data}
    if warnings:
        body["warnings"] = warnings
    return _json(body)


def _param(name: str, default: str | None = None) -> str:
    value = request.values.get(name, default)
    if value is None or value == "":
        raise BadData(f"missing parameter {name!r}")
    return value


def _time(name: str, default: float | None = None) -> float:
    """A Prometheus timestamp: Unix seconds (with decimals) or RFC 3339."""
    raw = request.values.get(name)
    if raw is None or raw == "":
        if default is None:
            raise BadData(f"missing parameter {name!r}")
        return default
    try:
        value = float(raw)
    except ValueError:
        try:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise BadData(f"invalid parameter {name!r}: cannot parse {raw!r} to a valid "
                          "timestamp") from None
    if not math.isfinite(value):
        raise BadData(f"invalid parameter {name!r}: {raw!r} is not a finite time")
    return value


def _duration(name: str) -> float:
    raw = _param(name)
    try:
        value = float(raw)
    except ValueError:
        try:
            value = promql_parser.parse_duration(raw).total_seconds()
        except ValueError:
            raise BadData(f"invalid parameter {name!r}: cannot parse {raw!r} to a valid "
                          "duration") from None
    if not math.isfinite(value) or value <= 0:
        raise BadData(f"invalid parameter {name!r}: zero or negative query resolution step "
                      "widths are not accepted. Try a positive integer")
    return value


def _plan(text: str) -> object:
    try:
        return parse(text)
    except Unsupported as exc:
        raise BadData(f"not supported by this appliance: {exc}") from None
    except QueryError as exc:
        raise BadData(f"invalid parameter 'query': {exc}") from None


def _run(plan: object, times: np.ndarray, step: float):
    try:
        return evaluate(plan, StoreSource(get_store()), times, step)
    except Unsupported as exc:
        raise BadData(f"not supported by this appliance: {exc}") from None
    except QueryError as exc:
        raise BadData(str(exc), "execution", 422) from None


def _fmt(v: float) -> str:
    """A sample value as Prometheus writes it (Go's ``FormatFloat(v, 'f', -1, 64)``)."""
    if v != v:
        return "NaN"
    if v in (math.inf, -math.inf):
        return "+Inf" if v > 0 else "-Inf"
    text = repr(v)
    if "e" in text:
        return np.format_float_positional(v, trim="-")
    return text[:-2] if text.endswith(".0") else text


def _stamp(t: float) -> float | int:
    return int(t) if t == int(t) else round(t, 3)


@bp.route("/query", methods=BOTH)
@operation(ANSWER, summary="PromQL instant query", params=(
    _required("query", "PromQL (the documented subset)"),
    query("time", TEXT, "RFC 3339 or Unix time; default now"), query("timeout", TEXT)))
def instant_query() -> Response:
    plan = _plan(_param("query"))
    t = _time("time", time.time())
    value, warnings = _run(plan, np.array([t]), INSTANT_STEP)
    stamp = _stamp(t)
    if isinstance(value, Scalar):
        return _success({"resultType": "scalar", "result": [stamp, _fmt(float(value.values[0]))]},
                        warnings)
    result = [{"metric": labels, "value": [stamp, _fmt(row[0])]}
              for labels, row in zip(value.labels, value.values.tolist(), strict=True)]
    return _success({"resultType": "vector", "result": result}, warnings)


@bp.route("/query_range", methods=BOTH)
@operation(ANSWER, summary="PromQL range query", params=(
    _required("query", "PromQL (the documented subset)"), _required("start"), _required("end"),
    _required("step", "seconds or a duration (1m)"), query("timeout", TEXT)))
def query_range() -> Response:
    plan = _plan(_param("query"))
    start, end, step = _time("start"), _time("end"), _duration("step")
    if end < start:
        raise BadData("invalid parameter 'end': end timestamp must not be before start time")
    if (end - start) / step > MAX_POINTS:
        raise BadData("exceeded maximum resolution of 11,000 points per timeseries. Try "
                      "decreasing the query resolution (?step=XX)")
    times = start + step * np.arange(int((end - start) // step) + 1)
    value, warnings = _run(plan, times, step)
    rows = ([({}, value.values)] if isinstance(value, Scalar)
            else zip(value.labels, value.values, strict=True))
    result = []
    pairs = _Pairs(times)
    for labels, row in rows:
        known = ~np.isnan(row)
        if known.any():
            points = pairs.encode(row, None if known.all() else np.flatnonzero(known))
            result.append(b'{"metric":%b,"values":%b}' % (orjson.dumps(labels), points))
    body = b'{"status":"success","data":{"resultType":"matrix","result":[%b]}' % (
        b",".join(result))
    if warnings:
        body += b',"warnings":' + orjson.dumps(warnings)
    return Response(body + b"}", mimetype="application/json")


class _Pairs:
    """``[[t,"v"],...]`` as JSON for the rows of one range query, values quoted as
    Prometheus writes them (``"2"``, ``"0.5"``).

    A day at 60 s over 25 series is 36k points: formatting each in Python cost more than
    the whole query. orjson writes a row's values in one call (shortest round-trip form,
    like Go's ``FormatFloat(v, 'f', -1, 64)`` except that very large or small values keep
    an exponent, which every Prometheus client parses); each is then joined between the
    separators ``"],[t,"``, made once per query for every evaluation time, and a last pass
    drops the ``.0`` of whole values (nothing else in the text ends ``.0"``).
    """

    def __init__(self, times: np.ndarray):
        self.times = times
        self._seps: np.ndarray | None = None

    def seps(self) -> np.ndarray:
        if self._seps is None:
            whole = self.times.astype(np.int64)
            stamps = (orjson.dumps(whole, option=orjson.OPT_SERIALIZE_NUMPY)
                      if np.array_equal(whole, self.times)  # the usual grid of whole seconds
                      else orjson.dumps([_stamp(t) for t in self.times.tolist()]))
            self._seps = np.array([b'"],[' + t + b',"' for t in stamps[1:-1].split(b",")],
                                  dtype=object)
        return self._seps

    def encode(self, row: np.ndarray, at: np.ndarray | None) -> bytes:
        """The pairs of ``row`` at the columns ``at`` (every column when None)."""
        values = row if at is None else row[at]
        if not np.isfinite(values).all():  # rare: infinities are written as Prometheus does
            times = self.times if at is None else self.times[at]
            return orjson.dumps([[_stamp(t), _fmt(v)] for t, v in
                                 zip(times.tolist(), values.tolist(), strict=True)])
        seps = (self.seps() if at is None else self.seps()[at]).tolist()
        seps[0] = b"[[" + seps[0][4:]
        seps.append(b'"]]')
        parts: list[bytes | None] = [None] * (2 * len(values) + 1)
        parts[0::2] = seps
        parts[1::2] = orjson.dumps(np.ascontiguousarray(values),
                                   option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")
        return b"".join(parts).replace(b'.0"', b'"')


def _matched(required: bool) -> list[SeriesInfo]:
    """The series the ``match[]`` selectors name (every series when none is given) that
    have samples between ``start`` and ``end`` (all time when neither is given)."""
    texts = request.values.getlist("match[]")
    source = StoreSource(get_store())
    if not texts:
        if required:
            raise BadData("no match[] parameter provided")
        return _in_range(source, source.catalogue())
    found: dict[str, SeriesInfo] = {}
    for text in texts:
        sel = _plan(text)
        if not isinstance(sel, Selector) or sel.range:
            raise BadData(f"invalid parameter 'match[]': {text!r} is not a series selector")
        found.update((s.ref.id, s) for s in source.select(sel.matchers))
    return _in_range(source, list(found.values()))


def _in_range(source: StoreSource, series: list[SeriesInfo]) -> list[SeriesInfo]:
    """``series`` less those without a sample in ``[start, end]``; Prometheus' defaults are
    the beginning and the end of time, so with neither given nothing is read."""
    start, end = _time("start", -math.inf), _time("end", math.inf)
    if end < start:
        raise BadData("invalid parameter 'end': end timestamp must not be before start time")
    if start == -math.inf and end == math.inf:
        return series
    return source.present(series, start, end)


@bp.route("/series", methods=BOTH)
@operation(ANSWER, summary="Series matching selectors", params=(MATCH, *SPAN))
def series() -> Response:
    return _success([s.labels for s in _matched(required=True)])


@bp.route("/labels", methods=BOTH)
@operation(ANSWER, summary="Label names", params=(MATCH, *SPAN))
def labels() -> Response:
    return _success(sorted({k for s in _matched(required=False) for k in s.labels}))


@bp.get("/label/<name>/values")
@operation(ANSWER, summary="A label's values", params=(MATCH, *SPAN))
def label_values(name: str) -> Response:
    values = {s.labels[name] for s in _matched(required=False) if name in s.labels}
    return _success(sorted(values))


@bp.get("/metadata")
@operation(ANSWER, summary="Metric metadata", params=(query("metric", TEXT),
                                                      query("limit", TEXT)))
def metadata() -> Response:
    wanted = request.values.get("metric") or None
    out: dict[str, list[dict]] = {}
    for s in StoreSource(get_store()).catalogue(wanted):
        name = s.labels["__name__"]
        if name not in out:
            out[name] = [{"type": "counter" if s.counter else "gauge",
                          "help": help_text(s.ref.name, s.ref.unit), "unit": ""}]
    limit = request.values.get("limit", "")
    if limit.lstrip("-").isdigit() and int(limit) >= 0:
        out = dict(list(out.items())[: int(limit)])
    return _success(out)


@bp.get("/status/buildinfo")
@operation(ANSWER, summary="Build information (the Prometheus API version followed)")
def buildinfo() -> Response:
    return _success({"version": API_VERSION, "revision": f"appliance-{__version__}",
                     "branch": "appliance", "buildUser": "", "buildDate": "",
                     "goVersion": ""})


@bp.route("/format_query", methods=BOTH)
@operation(ANSWER, summary="A PromQL expression, formatted",
           params=(_required("query", "PromQL"),))
def format_query() -> Response:
    try:
        return _success(pretty(_param("query")))
    except QueryError as exc:
        raise BadData(f"invalid parameter 'query': {exc}") from None
