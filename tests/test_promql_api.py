"""The Prometheus query API over HTTP: auth, errors, warnings, and real clients.

Real clients: promtool's ``query instant|range|series|labels`` and the request sequence
Grafana's Prometheus datasource sends (FIELD-NOTES.md), over a real HTTP port.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time

import numpy as np
import pytest
import requests

from appliance import tokens
from appliance.web.api import create_app
from tests.promserver import ServedApp, fleet_samples, load


@pytest.fixture
def served(store):
    load(store, fleet_samples(4, 30, time.time() - 60))
    admin = tokens.create(store.index, "admin", "admin")
    reader = tokens.create(store.index, "grafana", "reader")
    server = ServedApp(create_app(store.settings, store))
    yield server, admin, reader
    server.stop()


def _basic(token: str) -> dict[str, str]:
    """What Grafana sends with "Basic auth" on, the token as user, no password."""
    return {"Authorization": "Basic " + base64.b64encode(f"{token}:".encode()).decode()}


def test_needs_a_token_and_accepts_bearer_or_basic(served):
    server, _admin, reader = served
    url = f"{server.url}/api/v1/query"
    assert requests.post(url, data={"query": "1+1"}, timeout=10).status_code == 401
    assert requests.post(url, data={"query": "1+1"}, headers=_basic("wrong"),
                         timeout=10).status_code == 401
    for headers in (_basic(reader), {"Authorization": f"Bearer {reader}"}):
        r = requests.post(url, data={"query": "1+1"}, headers=headers, timeout=10)
        assert r.status_code == 200
        assert r.json()["data"]["result"][1] == "2"


def test_grafana_datasource_sequence(served):
    """Save & test, the metric browser, then a panel, as Grafana 10's datasource asks."""
    server, _admin, reader = served
    s = requests.Session()
    s.headers.update(_basic(reader))
    base = f"{server.url}/api/v1"
    now = time.time()
    build = s.get(f"{base}/status/buildinfo", timeout=10).json()
    assert build["status"] == "success" and build["data"]["version"].startswith("2.")
    test = s.post(f"{base}/query", data={"query": "1+1", "time": now}, timeout=10).json()
    assert test["data"] == {"resultType": "scalar", "result": [pytest.approx(now, abs=1e-3),
                                                               "2"]}
    window = {"start": int(now - 3600), "end": int(now)}
    labels = s.get(f"{base}/labels", params=window, timeout=10).json()["data"]
    assert {"__name__", "resource_id", "resource_type", "metric_id", "device_name",
            "host_name"} <= set(labels)
    names = s.get(f"{base}/label/__name__/values", params=window, timeout=10).json()["data"]
    assert names == ["disk_device_read_bytes_total", "disk_free", "disk_usage"]
    series = s.post(f"{base}/series", data={"match[]": "disk_usage", **window},
                    timeout=10).json()["data"]
    assert len(series) == 4 and all(x["__name__"] == "disk_usage" for x in series)
    meta = s.get(f"{base}/metadata", timeout=10).json()["data"]
    assert meta["disk_device_read_bytes_total"] == [
        {"type": "counter", "help": "disk.device.read.bytes (B)", "unit": ""}]
    panel = s.post(f"{base}/query_range", timeout=10, data={
        "query": "sum by (host_name) (rate(disk_device_read_bytes_total[5m]))",
        "start": int(now - 1200) // 60 * 60, "end": int(now) // 60 * 60, "step": 60})
    body = panel.json()
    assert panel.status_code == 200 and body["data"]["resultType"] == "matrix"
    assert sorted(x["metric"]["host_name"] for x in body["data"]["result"]) == [
        "host0", "host1", "host2", "host3"]
    assert "warnings" not in body


def test_promtool(served):
    server, _admin, reader = served
    # Go's HTTP client sends a URL's user as Basic auth: the token, no password.
    url = server.url.replace("http://", f"http://{reader}@")

    def promtool(*args: str) -> str:
        out = subprocess.run(["promtool", "query", *args], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    instant = promtool("instant", url, "count(disk_usage)")
    assert instant.strip().startswith("{} => 4 @")
    now = int(time.time()) // 60 * 60
    ranged = promtool("range", "--start", str(now - 900), "--end", str(now), "--step", "1m",
                      url, 'max_over_time(disk_free{host_name="host1"}[5m])')
    assert 'host_name="host1"' in ranged and ranged.count("@[") >= 10
    series = promtool("series", "--match", 'disk_free{device_name="sd002"}', url)
    assert series.count("__name__=\"disk_free\"") == 1 and 'device_name="sd002"' in series
    labels = promtool("labels", url, "host_name")
    assert labels.split() == ["host0", "host1", "host2", "host3"]
    as_json = json.loads(promtool("-o", "json", "instant", url, "vector(1)"))
    assert as_json[0]["value"][1] == "1"


@pytest.mark.parametrize("query, names", [
    ("foo[5m:1m]", "subqueries"),
    ("foo @ 100", "@ modifier"),
    ('label_replace(foo, "a", "b", "c", "d")', "string literals"),
    ("histogram_quantile(0.9, foo)", "histogram_quantile()"),
    ("foo and bar", "'and'"),
    ("foo / on(a) group_left bar", "group_left"),
    ("stddev(foo)", "stddev()"),
    ("deriv(foo[5m])", "deriv()"),
    ("disk_device_read_bytes_total", "read it with rate()"),
    ("rate(disk_usage[5m])", "need a counter"),
    ("disk_free[5m]", "range vector as a query's result"),
])
def test_unsupported_promql_is_a_prometheus_400_naming_it(served, query, names):
    server, admin, _reader = served
    r = requests.post(f"{server.url}/api/v1/query", data={"query": query},
                      headers={"Authorization": f"Bearer {admin}"}, timeout=10)
    body = r.json()
    assert r.status_code == 400, body
    assert body["status"] == "error" and body["errorType"] == "bad_data"
    assert "not supported" in body["error"] and names in body["error"]
    assert body["code"] == 400 and body["description"] == body["error"]


@pytest.mark.parametrize("path, params, names", [
    ("query", {"query": "sum(("}, "'query'"),
    ("query", {}, "'query'"),
    ("query", {"query": "1", "time": "yesterday"}, "'time'"),
    ("query_range", {"query": "1", "start": 10, "end": 5, "step": 1}, "'end'"),
    ("query_range", {"query": "1", "start": 0, "end": 10, "step": "-1"}, "'step'"),
    ("query_range", {"query": "1", "start": 0, "end": 10, "step": "often"}, "'step'"),
    ("query_range", {"query": "1", "start": 0, "end": 10**6, "step": 1}, "11,000 points"),
    ("series", {}, "match[]"),
    ("series", {"match[]": "sum(disk_free)"}, "'match[]'"),
])
def test_bad_parameters_are_named(served, path, params, names):
    server, admin, _reader = served
    r = requests.post(f"{server.url}/api/v1/{path}", data=params,
                      headers={"Authorization": f"Bearer {admin}"}, timeout=10)
    assert r.status_code == 400
    assert r.json()["errorType"] == "bad_data" and names in r.json()["error"]


def test_step_finer_than_the_buckets_warns(served):
    server, admin, _reader = served
    now = int(time.time())
    r = requests.get(f"{server.url}/api/v1/query_range", timeout=10,
                     headers={"Authorization": f"Bearer {admin}"},
                     params={"query": "avg(disk_usage)", "start": now - 600, "end": now,
                             "step": "15s"})
    body = r.json()
    assert r.status_code == 200 and body["data"]["result"]
    assert body["warnings"] == [
        "medium policy: served from 60 s buckets, coarser than the step of 15 s"]


def test_format_query(served):
    server, admin, _reader = served
    r = requests.get(f"{server.url}/api/v1/format_query", timeout=10,
                     headers={"Authorization": f"Bearer {admin}"},
                     params={"query": "sum(rate(a_total[5m]))by(x)"})
    assert r.json() == {"status": "success", "data": "sum by (x) (rate(a_total[5m]))"}


def test_open_read_opens_the_query_api_but_not_writes(store):
    from appliance import config

    settings = config.parse({"data_dir": str(store.settings.data_dir),
                             "api": {"open_read": True}}, "<test>")
    client = create_app(settings, store).test_client()
    assert client.post("/api/v1/query", data={"query": "vector(2)"}).status_code == 200
    assert client.get("/api/v1/labels").status_code == 200
    assert client.post("/v1/metric", json={"archive_policy_name": "low"}).status_code == 401


def test_series_are_named_and_labelled_exactly_as_on_metrics(served):
    from prometheus_client.parser import text_string_to_metric_families

    server, admin, _reader = served
    headers = {"Authorization": f"Bearer {admin}"}
    text = requests.get(f"{server.url}/metrics", headers=headers, timeout=10).text
    scraped = {
        frozenset({"__name__": s.name, **{k: v for k, v in s.labels.items() if v}}.items())
        for family in text_string_to_metric_families(text) for s in family.samples
        if not s.name.startswith("appliance_")}
    series = requests.get(f"{server.url}/api/v1/series", headers=headers, timeout=10,
                          params={"match[]": '{__name__=~".+"}'}).json()["data"]
    assert len(series) == len(scraped) == 12
    assert {frozenset(s.items()) for s in series} == scraped


def test_series_and_labels_list_only_what_has_samples_between_start_and_end(store):
    """Prometheus' documented rule for /series, /labels and /label/<name>/values: a series
    is listed if it has samples in ``[start, end]``; neither given means all time."""
    from appliance.model import PollResult

    now = time.time() // 60 * 60
    early, late = now - 3 * 3600, now  # two disks end 3 h ago, two start 1 h ago
    load(store, PollResult(
        [s for s in fleet_samples(4, 60, early).samples
         if s.resource.attributes["device_name"] in ("sd000", "sd001")]
        + [s for s in fleet_samples(4, 60, late).samples
           if s.resource.attributes["device_name"] in ("sd002", "sd003")]))
    client = create_app(store.settings, store).test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = (
        f"Bearer {tokens.create(store.index, 'grafana', 'reader')}")

    def devices(path, **window):
        body = client.get(f"/api/v1/{path}", query_string={"match[]": "disk_usage", **window})
        assert body.status_code == 200, body.get_json()
        data = body.get_json()["data"]
        return sorted(x["device_name"] for x in data) if path == "series" else data

    in_early = {"start": early - 50 * 60, "end": early - 40 * 60}
    in_late = {"start": now - 30 * 60, "end": now}
    between = {"start": early + 1800, "end": late - 70 * 60}
    assert devices("series") == ["sd000", "sd001", "sd002", "sd003"]
    assert devices("series", **in_early) == ["sd000", "sd001"]
    assert devices("series", **in_late) == ["sd002", "sd003"]
    assert devices("series", **between) == []
    assert devices("series", start=late - 1800) == ["sd002", "sd003"]  # end: all time
    assert devices("series", end=early - 3000) == ["sd000", "sd001"]
    assert devices("label/device_name/values", **in_early) == ["sd000", "sd001"]
    assert devices("label/device_name/values", **in_late) == ["sd002", "sd003"]
    assert client.get("/api/v1/labels", query_string=between).get_json()["data"] == []
    assert "device_name" in client.get("/api/v1/labels",
                                       query_string=in_late).get_json()["data"]
    wrong = client.get("/api/v1/series", query_string={"match[]": "disk_usage",
                                                       "start": now, "end": now - 60})
    assert wrong.status_code == 400 and wrong.get_json()["errorType"] == "bad_data"


def test_best_granularity_follows_step_and_retention():
    from appliance.model import BUILTIN_POLICIES
    from appliance.web.api.promql_source import best_granularity

    high, now = BUILTIN_POLICIES["high"], 10**9
    assert best_granularity(high, now - 600, 1, now) == 1
    assert best_granularity(high, now - 600, 30, now) == 1  # 60 s would be coarser than step
    assert best_granularity(high, now - 600, 60, now) == 60
    assert best_granularity(high, now - 2 * 3600, 1, now) == 60  # 1 s kept for 1 h only
    assert best_granularity(high, now - 30 * 86400, 60, now) == 3600
    assert best_granularity(high, now - 2 * 365 * 86400, 60, now) == 3600


def test_a_range_beyond_retention_reads_only_what_is_kept(store):
    from appliance.promql import Matcher
    from appliance.web.api.promql_source import StoreSource

    load(store, fleet_samples(2, 30, time.time() - 60))
    source = StoreSource(store)
    series = source.select([Matcher("__name__", "=", "disk_usage")])
    now = time.time()
    blocks, warnings = source.read(series, "max", now - 3650 * 86400, now + 86400, 60)
    assert set(warnings) == {
        "medium policy: served from 3600 s buckets, coarser than the step of 60 s"}
    assert len(blocks) == 1
    # medium: 60 s buckets kept 7 days; nothing older or newer is allocated
    assert blocks[0].granularity == 3600 and blocks[0].values.shape[1] <= 365 * 24 + 4
    blocks, _ = source.read(series, "max", now - 3600, now + 86400, 60)
    assert blocks[0].granularity == 60 and blocks[0].values.shape[1] <= 64
    assert (~np.isnan(blocks[0].values)).sum(axis=1).tolist() == [30, 30]


def test_a_selector_matching_gauges_and_counters_keeps_the_readable_ones(served):
    server, admin, _reader = served
    r = requests.post(f"{server.url}/api/v1/query", timeout=10,
                      headers={"Authorization": f"Bearer {admin}"},
                      data={"query": '{host_name="host1"}', "time": time.time() - 60})
    body = r.json()
    assert r.status_code == 200
    assert sorted(x["metric"]["__name__"] for x in body["data"]["result"]) == [
        "disk_free", "disk_usage"]
    assert body["warnings"] == ["1 series left out: disk_device_read_bytes_total is a "
                                "counter, stored as a rate: read it with rate(), irate() or "
                                "increase()"]
