"""Pushes into the appliance, as Gnocchi takes them: remote write and InfluxDB line protocol.

A Prometheus server, vmagent or Telegraf points its output here. Each pushed series becomes a
metric on a resource, through the same ``Store.write`` the pollsters' samples take, so it is
readable at once like any other. A payload is parsed whole before anything is written: a bad
one gets a 400 naming the problem and writes nothing.

Mapping (Gnocchi's, so that a site moving between the two keeps its names):
- remote write: resource type ``prometheus``, one resource per ``job`` + ``instance``; the
  metric is ``__name__`` followed by the other labels, ``up{le="0.5"}``-style.
- line protocol: resource type ``influxdb``, one resource per value of the resource tag
  (``host`` unless ``receivers.influxdb_resource_tag`` says otherwise); the metric is
  ``measurement.field`` followed by ``@tag=value,...`` for the other tags.

Remote-write values that are not finite (Prometheus's staleness markers are NaN) are not
measures and are counted as skipped; so are line-protocol string fields.
"""

from __future__ import annotations

import zlib

from flask import Blueprint, Response, request

from appliance.lineprotocol import LineError, parse
from appliance.model import Kind, PollResult, Resource, Sample
from appliance.web.api import jsonio
from appliance.web.api.errors import ApiError
from appliance.web.api.openapi import operation, query
from appliance.web.context import get_settings, get_store

bp = Blueprint("receivers", __name__)


def _metric_name(name: str) -> str:
    # A metric name is a URL path segment in the v1 API: no "/" (Gnocchi's rule too).
    return name.replace("/", "_")


def _write(samples: list[Sample]) -> tuple[int, int]:
    result = get_store().write(PollResult(samples=samples))
    return result.accepted, len(result.rejected)


@bp.post("/prometheus/write")
@operation({"type": "object", "properties": {
    "accepted": {"type": "integer"}, "rejected_count": {"type": "integer"},
    "skipped": {"type": "integer"}}}, status=202,
    body={"type": "string", "format": "binary"}, body_type="application/x-protobuf")
def prometheus_write():
    """Remote write 1.0: a snappy block of a protobuf ``WriteRequest``."""
    # protobuf's descriptors cost a process ~1.5 MB: only a worker sent a remote write
    # loads them, not every process of the appliance.
    from appliance.remotewrite import PayloadError, PayloadTooLarge, decode, label_pairs

    cap = get_settings().receivers.max_decompressed_bytes
    try:
        series = decode(request.get_data(cache=False), cap)
    except PayloadTooLarge as exc:
        raise ApiError(413, str(exc)) from None
    except PayloadError as exc:
        raise ApiError(400, f"Invalid remote write payload: {exc}") from None
    samples, skipped = [], 0
    resources: dict[tuple[str, str], Resource] = {}
    for s in series:
        job, instance = s.labels.get("job", ""), s.labels.get("instance", "")
        resource = resources.get((job, instance))
        if resource is None:
            resource = resources[(job, instance)] = Resource.from_key(
                "prometheus", f"prometheus://{job}/{instance}", {"job": job, "instance": instance}
            )
        rest = label_pairs(s.labels, skip=("__name__", "job", "instance"))
        name = _metric_name(s.labels["__name__"] + (f"{{{rest}}}" if rest else ""))
        for when, value in s.points:
            if value != value or value in (float("inf"), float("-inf")):
                skipped += 1
                continue
            samples.append(Sample(resource, name, "", Kind.GAUGE, value, when))
    accepted, rejected = _write(samples)
    return jsonio.response(
        {"accepted": accepted, "rejected_count": rejected, "skipped": skipped}, 202
    )


@bp.post("/influxdb/write")
@operation(status=204, body={"type": "string"}, body_type="text/plain", params=(
    query("db", {"type": "string"}, "accepted, not used"),
    query("precision", {"type": "string", "enum": ["ns", "n", "us", "u", "ms", "s", "m", "h"]},
          "timestamp unit")))
def influxdb_write():
    """InfluxDB 1.x ``/write``: line protocol, ``db`` and ``precision`` query parameters."""
    settings = get_settings().receivers
    body = request.get_data(cache=False)
    if request.headers.get("Content-Encoding", "").lower() == "gzip":
        body = _gunzip(body, settings.max_decompressed_bytes)
    elif len(body) > settings.max_decompressed_bytes:
        raise ApiError(413, f"body over the {settings.max_decompressed_bytes}-byte limit")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"Invalid line protocol: not UTF-8 ({exc.reason})") from None
    precision = request.args.get("precision", "ns")
    try:
        points = parse(text, precision)
    except LineError as exc:
        raise ApiError(400, f"Invalid line protocol: {exc}") from None
    except ValueError as exc:
        raise ApiError(400, f"Invalid value for precision: {exc}") from None
    tag = request.headers.get("X-Gnocchi-InfluxDB-Tag-Resource-ID", settings.influxdb_resource_tag)
    samples, skipped = [], 0
    resources: dict[str, Resource] = {}
    for n, p in enumerate(points, 1):
        key = p.tags.get(tag)
        if key is None:
            raise ApiError(400, f"Invalid line protocol: point {n} ({p.measurement}) has no "
                                f"{tag!r} tag to name its resource")
        resource = resources.get(key)
        if resource is None:
            resource = resources[key] = Resource.from_key("influxdb", f"influxdb://{key}",
                                                          {tag: key})
        others = ",".join(f"{k}={v}" for k, v in sorted(p.tags.items()) if k != tag)
        skipped += p.skipped
        for field, value in p.fields.items():
            name = _metric_name(f"{p.measurement}.{field}" + (f"@{others}" if others else ""))
            samples.append(Sample(resource, name, "", Kind.GAUGE, value, p.timestamp))
    _accepted, rejected = _write(samples)
    # InfluxDB answers 204; clients (Telegraf, influxdb-python) expect exactly that.
    response = Response(status=204)
    response.headers["X-Appliance-Rejected"] = str(rejected)
    response.headers["X-Appliance-Skipped"] = str(skipped)
    return response


def _gunzip(body: bytes, cap: int) -> bytes:
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(body, cap)
    except zlib.error as exc:
        raise ApiError(400, f"Invalid gzip body: {exc}") from None
    if inflater.unconsumed_tail:
        raise ApiError(413, f"decompressed body over the {cap}-byte limit")
    return out
