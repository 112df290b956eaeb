"""Pushes in-process: remote write and line protocol over a real store (rrdcached, RRD, SQLite).

The real senders (a Prometheus server, an InfluxDB client) are in test_receivers_e2e.py; here
the payloads are built by hand so that each malformed case is exact.
"""

from __future__ import annotations

import gzip
import time

import cramjam
import pytest

from appliance import tokens
from appliance.remotewrite import Series, WriteRequest, encode
from appliance.web.api import create_app
from tests.test_api import Api


@pytest.fixture
def api(store) -> Api:
    admin = tokens.create(store.index, "admin", "admin")
    reader = tokens.create(store.index, "viewer", "reader")
    return Api(create_app(store.settings, store).test_client(), admin, reader)


def minute() -> int:
    return int(time.time()) // 60 * 60


def resources(api: Api, type_: str) -> list[dict]:
    r = api.get("/v1/resource/generic", query_string={"details": "true"})
    assert r.status_code == 200, r.json
    return [res for res in r.json if res["type"] == type_]


def nothing_written(api: Api) -> bool:
    return api.get("/v1/resource/generic").json == [] and api.get("/v1/metric").json == []


def measures(api: Api, metric_id: str) -> list[list]:
    r = api.get(f"/v1/metric/{metric_id}/measures", query_string={"granularity": 60})
    assert r.status_code == 200, r.json
    return r.json


def write(api: Api, body: bytes, token: str | None = "admin"):
    return api.post("/v1/prometheus/write", data=body, token=token,
                    headers={"Content-Encoding": "snappy",
                             "Content-Type": "application/x-protobuf"})


def test_remote_write_becomes_metrics_on_resources_readable_at_once(api):
    t = minute() - 120
    body = encode([
        Series({"__name__": "node_load1", "job": "node", "instance": "h1:9100"},
               [(t, 0.5), (t + 60, 1.5)]),
        Series({"__name__": "http_requests", "job": "node", "instance": "h1:9100",
                "code": "200", "path": "/a/b"}, [(t + 60, 7.0)]),
        Series({"__name__": "up", "job": "node", "instance": "h1:9100"},
               [(t + 60, float("nan"))]),  # a staleness marker: not a measure
    ])
    r = write(api, body)
    assert r.status_code == 202, r.json
    assert r.json == {"accepted": 3, "rejected_count": 0, "skipped": 1}
    [res] = resources(api, "prometheus")
    assert res["original_resource_id"] == "prometheus://node/h1:9100"
    assert set(res["metrics"]) == {"node_load1", 'http_requests{code="200",path="_a_b"}'}
    assert [m[2] for m in measures(api, res["metrics"]["node_load1"])] == [0.5, 1.5]


@pytest.mark.parametrize(("body", "problem"), [
    (b"", "empty body"),
    (b"\xff\xff\xff\xff\xff\xff", "not snappy"),
    (bytes(cramjam.snappy.compress_raw(b"\x0a\x05garbage-not-protobuf")), "not a protobuf"),
    (encode([Series({"job": "x"}, [(1.7e9, 1.0)])]), "timeseries[0] has no __name__"),
])
def test_a_bad_remote_write_is_a_400_naming_the_problem_and_writes_nothing(api, body, problem):
    r = write(api, body)
    assert r.status_code == 400, r.json
    assert problem in r.json["description"]
    assert nothing_written(api)


def test_a_remote_write_over_the_decompressed_cap_is_a_413(api, store):
    cap = store.settings.receivers.max_decompressed_bytes
    req = WriteRequest()
    ts = req.timeseries.add()
    ts.labels.add(name="__name__", value="x" * (cap + 10))
    body = bytes(cramjam.snappy.compress_raw(req.SerializeToString()))
    assert len(body) < cap // 10  # what a bomb looks like: small on the wire
    r = write(api, body)
    assert r.status_code == 413 and "limit" in r.json["description"]
    assert nothing_written(api)


def test_pushing_needs_an_admin_token(api):
    body = encode([Series({"__name__": "x"}, [(time.time(), 1.0)])])
    assert write(api, body, token=None).status_code == 401
    assert write(api, body, token="reader").status_code == 403
    assert api.post("/v1/influxdb/write", data=b"cpu,host=a v=1", token="reader").status_code == 403


def test_line_protocol_becomes_metrics_with_tags_in_the_name(api):
    t = minute() - 60
    body = (f'cpu,host=web1,cpu=cpu0 usage_idle=90.5,usage_user=2i,label="x" {t}\n'
            f"# a comment\n\n"
            f"disk,host=web1 used=12u,ok=true {t}\n")
    r = api.post("/v1/influxdb/write?db=telegraf&precision=s", data=body.encode())
    assert r.status_code == 204
    assert r.headers["X-Appliance-Skipped"] == "1" and r.headers["X-Appliance-Rejected"] == "0"
    [res] = resources(api, "influxdb")
    assert res["original_resource_id"] == "influxdb://web1"
    assert set(res["metrics"]) == {"cpu.usage_idle@cpu=cpu0", "cpu.usage_user@cpu=cpu0",
                                   "disk.used", "disk.ok"}
    assert [m[2] for m in measures(api, res["metrics"]["cpu.usage_idle@cpu=cpu0"])] == [90.5]
    assert [m[2] for m in measures(api, res["metrics"]["disk.ok"])] == [1.0]


def test_line_protocol_gzip_and_its_cap(api, store):
    body = gzip.compress(f"m,host=h v=3 {minute()}000000000\n".encode())
    r = api.post("/v1/influxdb/write", data=body, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 204
    cap = store.settings.receivers.max_decompressed_bytes
    bomb = gzip.compress(b"#" * (cap + 1))
    r = api.post("/v1/influxdb/write", data=bomb, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 413


@pytest.mark.parametrize(("body", "query", "problem"), [
    ("cpu,host=a v=1\ncpu,host=a v=oops", {}, "line 2: bad value 'oops'"),
    ("cpu,host=a", {}, "line 1: needs a measurement, fields"),
    ('cpu,host=a s="open', {}, "line 1: unterminated string"),
    ("cpu,host=a v=1 12x", {}, "line 1: bad timestamp"),
    ("cpu,region=eu v=1", {}, "point 1 (cpu) has no 'host' tag"),
    ("cpu,host=a v=1", {"precision": "fortnight"}, "precision"),
])
def test_bad_line_protocol_is_a_400_naming_the_line_and_writes_nothing(api, body, query, problem):
    r = api.post("/v1/influxdb/write", data=body.encode(), query_string=query)
    assert r.status_code == 400, r.data
    assert problem in r.json["description"]
    assert nothing_written(api)
