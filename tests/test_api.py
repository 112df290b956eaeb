"""The v1 API in-process (Flask test client) over a real store: SQLite index, rrdcached, RRD."""

from __future__ import annotations

import base64
import struct
import time

import pytest

from appliance import tokens
from appliance.web.api import create_app
from appliance.web.api.v1.status import Status


class Api:
    """A test client that sends the admin token unless told otherwise."""

    def __init__(self, client, admin: str, reader: str):
        self.client = client
        self.admin = admin
        self.reader = reader

    def call(self, method: str, path: str, token: str | None = "admin", **kw):
        headers = kw.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {getattr(self, token)}"
        return self.client.open(path, method=method, headers=headers, **kw)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, **kw):
        return self.call("POST", path, **kw)


@pytest.fixture
def api(store) -> Api:
    admin = tokens.create(store.index, "admin", "admin")
    reader = tokens.create(store.index, "viewer", "reader")
    app = create_app(store.settings, store)
    return Api(app.test_client(), admin, reader)


def minute() -> int:
    return int(time.time()) // 60 * 60


def new_metric(api: Api, **body) -> str:
    r = api.post("/v1/metric", json={"archive_policy_name": "medium", **body})
    assert r.status_code == 201, r.json
    return r.json["id"]


def test_measures_pushed_are_readable_at_once_and_stale_ones_reported(api):
    mid = new_metric(api, name="power", unit="W")
    now = minute()
    r = api.post(f"/v1/metric/{mid}/measures",
                 json=[{"timestamp": now - 120, "value": 1.5},
                       {"timestamp": f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(now - 60))}",
                        "value": 3}])
    assert r.status_code == 202
    assert r.json == {"accepted": 2, "rejected_count": 0, "rejected": []}
    got = api.get(f"/v1/metric/{mid}/measures?granularity=60").json
    assert [p[1:] for p in got] == [[60.0, 1.5], [60.0, 3.0]]
    assert got[0][0].endswith("+00:00")

    r = api.post(f"/v1/metric/{mid}/measures", json=[{"timestamp": now - 120, "value": 9}])
    assert r.status_code == 202
    assert r.json["accepted"] == 0 and r.json["rejected_count"] == 1
    assert "not newer" in r.json["rejected"][0]["reason"]


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("start=yesterday", "start"),
        ("stop=nan", "stop"),
        ("granularity=7", "granularity"),
        ("granularity=abc", "granularity"),
        ("aggregation=median", "aggregation"),
        ("aggregation=last", "aggregation"),
    ],
)
def test_bad_measures_parameters_name_themselves(api, query, name):
    mid = new_metric(api)
    r = api.get(f"/v1/metric/{mid}/measures?{query}")
    assert r.status_code == 400
    assert name in r.json["description"]
    assert set(r.json) == {"title", "description", "code"}


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ([{"timestamp": "not a time", "value": 1}], "timestamp"),
        ([{"timestamp": 1.0, "value": "x"}], "value"),
        ([{"timestamp": 1.0, "value": True}], "value"),
        ([{"timestamp": 1.0}], "measures[0]"),
        ({"timestamp": 1.0, "value": 1}, "measures"),
    ],
)
def test_bad_measures_bodies_name_the_field(api, body, name):
    mid = new_metric(api)
    r = api.post(f"/v1/metric/{mid}/measures", json=body)
    assert r.status_code == 400
    assert name in r.json["description"]


def test_nan_and_infinity_are_refused(api):
    mid = new_metric(api)
    for literal in ("NaN", "Infinity", "1e999"):
        r = api.post(f"/v1/metric/{mid}/measures",
                     data=f'[{{"timestamp": 1700000000, "value": {literal}}}]',
                     content_type="application/json")
        assert r.status_code == 400, literal


def test_unknown_ids_and_uuids_are_4xx(api):
    assert api.get("/v1/metric/not-a-uuid").status_code == 400
    assert api.get("/v1/metric/3f0e6c8e-0000-4000-8000-000000000000").status_code == 404
    assert api.get("/v1/resource/nosuchtype").status_code == 404
    r = api.get("/v1/metric?limit=0")
    assert r.status_code == 400 and "limit" in r.json["description"]


def test_body_over_the_limit_is_413(api):
    mid = new_metric(api)
    size = api.client.application.config["MAX_CONTENT_LENGTH"]
    r = api.post(f"/v1/metric/{mid}/measures", data=b"[" + b" " * size + b"]",
                 content_type="application/json")
    assert r.status_code == 413
    assert r.json["code"] == 413


def test_auth_roles(api):
    assert api.get("/v1/metric", token=None).status_code == 401
    assert api.get("/v1/metric", token="reader").status_code == 200
    r = api.post("/v1/metric", token="reader", json={"archive_policy_name": "low"})
    assert r.status_code == 403 and "reader" in r.json["description"]
    # Search and aggregates are POSTs that only read.
    assert api.post("/v1/search/resource/generic", token="reader").status_code == 200
    r = api.post("/v1/aggregates", token="reader", json={"operations": "(metric x mean)",
                                                         "search": "id = 'none'"})
    assert r.status_code == 400 and "No metric" in r.json["description"]
    basic = base64.b64encode(f"{api.admin}:".encode()).decode()
    r = api.get("/v1/metric", token=None, headers={"Authorization": f"basic {basic}"})
    assert r.status_code == 200


def test_pagination_follows_link_next(api):
    ids = sorted(new_metric(api) for _ in range(5))
    seen, url = [], "/v1/metric?limit=2"
    while url:
        r = api.get(url)
        seen += [m["id"] for m in r.json]
        link = r.headers.get("Link")
        url = link[link.index("/v1/"):link.index(">")] if link else None
    assert seen == ids


def test_resource_create_show_patch_history_delete(api):
    r = api.post("/v1/resource/generic",
                 json={"id": "pushed-1", "user_id": "u", "project_id": "p",
                       "metrics": {"temp": {"archive_policy_name": "low", "unit": "C"}}})
    assert r.status_code == 201, r.json
    rid = r.json["id"]
    assert r.json["original_resource_id"] == "pushed-1"
    assert api.post("/v1/resource/generic", json={"id": "pushed-1"}).status_code == 409
    assert api.post("/v1/resource/generic", json={"id": "x", "flavor": 1}).status_code == 400
    assert api.get("/v1/resource/generic/pushed-1").json["id"] == rid
    r = api.call("PATCH", f"/v1/resource/generic/{rid}", json={"ended_at": "2030-01-01T00:00:00Z"})
    assert r.status_code == 200 and r.json["ended_at"] == "2030-01-01T00:00:00+00:00"
    history = api.get(f"/v1/resource/generic/{rid}/history").json
    assert [h["ended_at"] for h in history] == [None, "2030-01-01T00:00:00+00:00"]
    mid = r.json["metrics"]["temp"]
    assert api.get(f"/v1/resource/generic/{rid}/metric/temp").json["id"] == mid
    assert api.call("DELETE", f"/v1/resource/generic/{rid}").status_code == 204
    assert api.get(f"/v1/metric/{mid}").status_code == 404


def test_search_json_and_string_forms(api):
    for i, host in enumerate(["alpha", "beta", "gamma"]):
        api.post("/v1/resource/host", json={"id": f"h{i}", "host_name": host})
    by_json = api.post("/v1/search/resource/host",
                       json={"or": [{"=": {"host_name": "alpha"}},
                                    {"like": {"host_name": "g%"}}]}).json
    by_text = api.post("/v1/search/resource/host?filter=host_name%3D'alpha'%20or%20"
                       "host_name%20like%20'g%25'").json
    names = sorted(r["host_name"] for r in by_json)
    assert names == ["alpha", "gamma"]
    assert sorted(r["host_name"] for r in by_text) == names
    r = api.post("/v1/search/resource/host?filter=host_name%20%3D%3D%3D%20x")
    assert r.status_code == 400 and "filter" in r.json["description"]


def test_batch_endpoints_and_create_metrics(api):
    m1, m2 = new_metric(api), new_metric(api)
    now = minute()
    points = [{"timestamp": now - 60 * i, "value": float(i)} for i in range(5, 0, -1)]
    r = api.post("/v1/batch/metrics/measures", json={m1: points, m2: {"measures": points}})
    assert r.status_code == 202 and r.json["accepted"] == 10
    assert len(api.get(f"/v1/metric/{m2}/measures?granularity=60").json) == 5
    unknown = "3f0e6c8e-0000-4000-8000-000000000000"
    r = api.post("/v1/batch/metrics/measures", json={unknown: points})
    assert r.status_code == 400 and unknown in r.json["description"]

    api.post("/v1/resource/generic", json={"id": "batch-res"})
    body = {"batch-res": {"fresh": {"archive_policy_name": "low", "measures": points}}}
    r = api.post("/v1/batch/resources/metrics/measures", json=body)
    assert r.status_code == 400 and "batch-res/fresh" in r.json["description"]
    r = api.post("/v1/batch/resources/metrics/measures?create_metrics=true", json=body)
    assert r.status_code == 202 and r.json["accepted"] == 5
    metric = api.get("/v1/resource/generic/batch-res/metric/fresh").json
    assert metric["archive_policy_name"] == "low"


def test_aggregates_across_metrics_and_by_search(api):
    now = minute()
    ids = []
    for i, host in enumerate(["a", "a", "b"]):
        r = api.post("/v1/resource/host",
                     json={"id": f"agg{i}", "host_name": host,
                           "metrics": {"load": {"archive_policy_name": "medium"}}})
        ids.append(r.json["metrics"]["load"])
        pts = [{"timestamp": now - 60 * k, "value": float(i * 10 + k)} for k in (3, 2, 1)]
        api.post(f"/v1/metric/{ids[-1]}/measures", json=pts)
    ops = f"(aggregate mean (metric ({ids[0]} mean) ({ids[1]} mean)))"
    r = api.post("/v1/aggregates?granularity=60", json={"operations": ops})
    assert r.status_code == 200, r.json
    assert [p[2] for p in r.json["measures"]["aggregated"]] == [8.0, 7.0, 6.0]

    ops = ["*", ["metric", ids[2], "mean"], 2]
    r = api.post("/v1/aggregates?granularity=60", json={"operations": ops})
    assert [p[2] for p in r.json["measures"][ids[2]]["mean"]] == [46.0, 44.0, 42.0]

    r = api.post("/v1/aggregates?granularity=60&groupby=host_name",
                 json={"operations": "(aggregate max (metric load mean))",
                       "resource_type": "host", "search": "host_name != 'zzz'"})
    assert r.status_code == 200, r.json
    groups = {g["group"]["host_name"]: g["measures"]["measures"]["aggregated"] for g in r.json}
    assert [p[2] for p in groups["a"]] == [13.0, 12.0, 11.0]
    assert [p[2] for p in groups["b"]] == [23.0, 22.0, 21.0]

    r = api.post("/v1/aggregates", json={"operations": "(aggregate bogus (metric x mean))"})
    assert r.status_code == 400 and "operations" in r.json["description"]
    r = api.post("/v1/aggregates?fill=abc", json={"operations": ops})
    assert r.status_code == 400 and "fill" in r.json["description"]


def test_archive_policies_and_rules(api):
    body = {"name": "fast", "definition": [{"granularity": "1s", "timespan": "1 hour"}],
            "aggregation_methods": ["mean", "max"]}
    r = api.post("/v1/archive_policy", json=body)
    assert r.status_code == 201
    assert r.json["definition"] == [{"granularity": "0:00:01", "points": 3600,
                                     "timespan": "1:00:00"}]
    assert api.post("/v1/archive_policy", json=body).status_code == 409
    bad = {**body, "name": "x", "aggregation_methods": ["p99"]}
    r = api.post("/v1/archive_policy", json=bad)
    assert r.status_code == 400 and "aggregation_methods" in r.json["description"]
    r = api.post("/v1/archive_policy_rule",
                 json={"name": "fast-rule", "metric_pattern": "fast.*",
                       "archive_policy_name": "fast"})
    assert r.status_code == 201
    assert new_metric(api, archive_policy_name=None, name="fast.one")
    assert api.call("DELETE", "/v1/archive_policy/fast").status_code == 400
    assert api.call("DELETE", "/v1/archive_policy_rule/fast-rule").status_code == 204
    assert {p["name"] for p in api.get("/v1/archive_policy").json} >= {"low", "medium", "fast"}


def test_an_unreachable_store_is_a_503_with_retry_after_and_no_stack_trace(api, store):
    store.client.socket_path = "/nonexistent/socket"
    store.client.close()
    mid = new_metric(api)
    r = api.post(f"/v1/metric/{mid}/measures", json=[{"timestamp": 1.7e9, "value": 1}])
    assert r.status_code == 503
    assert int(r.headers["Retry-After"]) > 0
    assert "Traceback" not in r.get_data(as_text=True)
    assert set(r.json) == {"title", "description", "code"}
    read = api.get(f"/v1/metric/{mid}/measures")
    assert read.status_code == 503 and set(read.json) == {"title", "description", "code"}
    # The status says why, in the shape its OpenAPI model documents.
    health = Status.model_validate(api.get("/v1/status").json).appliance.store
    assert health.rrdcached == "unreachable" and "socket" in (health.error or "")
    assert 0 <= health.disk_free_bytes <= health.disk_total_bytes


def test_graphs_render_svg_and_png_with_units(api):
    mid = new_metric(api, name="room:temp", unit="C")
    empty = api.get(f"/v1/metric/{mid}/graph.svg")
    assert empty.status_code == 200 and b"<svg" in empty.data
    now = minute()
    api.post(f"/v1/metric/{mid}/measures",
             json=[{"timestamp": now - 60 * k, "value": 20.0 + k} for k in range(30, 0, -1)])
    svg = api.get(f"/v1/metric/{mid}/graph.svg?start=-1h&width=400&height=120")
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
    assert b"<svg" in svg.data and svg.data != empty.data
    widths = []
    for width in (300, 600):
        png = api.get(f"/v1/metric/{mid}/graph.png?aggregation=max&width={width}")
        assert png.status_code == 200 and png.data.startswith(b"\x89PNG")
        widths.append(struct.unpack(">I", png.data[16:20])[0])  # IHDR width
    assert widths[1] - widths[0] == 300
    for query, name in [("width=5", "width"), ("height=99999", "height"),
                        ("aggregation=last", "aggregation"), ("start=soon", "start")]:
        r = api.get(f"/v1/metric/{mid}/graph.svg?{query}")
        assert r.status_code == 400 and name in r.json["description"], query
    assert api.get(f"/v1/metric/{mid}/graph.gif").status_code == 404
