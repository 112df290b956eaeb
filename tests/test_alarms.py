"""Alarms end to end in one process: the real API (Flask app over a real store and
rrdcached), measures pushed through it, evaluation rounds driven with an injected ``now``,
and a real HTTP server receiving the webhooks.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from appliance import tokens
from appliance.alarms.actions import Notifier
from appliance.alarms.evaluator import Evaluator
from appliance.model import Kind, PollResult, Resource, Sample
from appliance.web.api import create_app

MINUTE = 60


class Receiver:
    """A real HTTP server on a free loopback port that records webhook bodies in order.

    Requests to ``/hang`` are held open until :meth:`close`, as by a target that never
    answers; ``hanging`` counts the requests held so far.
    """

    def __init__(self):
        self.payloads: list[tuple[str, dict]] = []
        self.hanging = 0
        self._release = threading.Event()
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver._cond:
                    receiver.payloads.append((self.path, body))
                    receiver.hanging += self.path == "/hang"
                    receiver._cond.notify_all()
                if self.path == "/hang":
                    receiver._release.wait(60)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_count(self, n: int, timeout: float = 20.0) -> list[tuple[str, dict]]:
        """Wait until ``n`` bodies have arrived and return them all."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.payloads) >= n, timeout):
                pytest.fail(f"expected {n} webhook calls, got {self.payloads}")
            return list(self.payloads)

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()


def measures_body(points) -> list[dict]:
    return [{"timestamp": dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(), "value": v}
            for ts, v in points]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


class Api:
    """The real Flask app over the test's store, with an admin and a reader token."""

    def __init__(self, settings, store):
        self.client = create_app(settings, store).test_client()
        self.admin = {"Authorization": f"Bearer {tokens.create(store.index, 'adm', 'admin')}"}
        self.reader = {"Authorization": f"Bearer {tokens.create(store.index, 'rd', 'reader')}"}

    def post(self, path, body, status=201):
        r = self.client.post(path, json=body, headers=self.admin)
        assert r.status_code == status, r.get_json()
        return r.get_json()

    def get(self, path, status=200):
        r = self.client.get(path, headers=self.reader)
        assert r.status_code == status, r.get_json()
        return r.get_json()

    def metric(self, policy="medium") -> str:
        return self.post("/v1/metric", {"archive_policy_name": policy})["id"]

    def push(self, metric_id, points) -> None:
        self.post(f"/v1/metric/{metric_id}/measures", measures_body(points), 202)

    def alarm(self, body) -> dict:
        return self.post("/v1/alarm", body)


@pytest.fixture
def api(settings, store):
    return Api(settings, store)


@pytest.fixture
def evaluator(store):
    notifier = Notifier(timeout=30, retries=1, backoff=0.1)
    yield Evaluator(store, notifier)
    notifier.close()


def base_time() -> int:
    """A minute boundary two hours ago: history the medium policy (1 min x 7 d) keeps."""
    now = int(dt.datetime.now(dt.UTC).timestamp())
    return now - now % 3600 - 2 * 3600


def by_metrics(metrics, **rule):
    return {"metrics": metrics, "aggregation_method": "mean", "granularity": 60,
            "evaluation_periods": 3, "comparison_operator": "gt", "threshold": 50.0, **rule}


def alarm_body(name, rule, url=None, type_="gnocchi_aggregation_by_metrics_threshold", **kw):
    body = {"name": name, "type": type_, f"{type_}_rule": rule, **kw}
    if url:
        body.update(ok_actions=[f"{url}/ok"], alarm_actions=[f"{url}/alarm"],
                    insufficient_data_actions=[f"{url}/insufficient"])
    return body


def minutes(start, values):
    """Points on minute boundaries (each fills exactly one 60 s bucket)."""
    return [(start + i * MINUTE, v) for i, v in enumerate(values)]


def test_rule_goes_insufficient_ok_alarm_ok_with_webhooks_in_order(api, evaluator, receiver):
    t0 = base_time()
    metric = api.metric()
    alarm = api.alarm(alarm_body("cpu-high", by_metrics([metric]), receiver.url,
                                 severity="critical"))
    assert alarm["state"] == "insufficient data"
    aid = alarm["alarm_id"]

    api.push(metric, minutes(t0, [10.0]))
    evaluator.run_round(now=t0 + 1)  # one point of three: still insufficient data
    assert api.get(f"/v1/alarm/{aid}/state") == "insufficient data"

    api.push(metric, minutes(t0 + MINUTE, [10.0, 10.0, 10.0]))
    report = evaluator.run_round(now=t0 + 3 * MINUTE + 1)
    assert report.transitions == 1
    assert api.get(f"/v1/alarm/{aid}/state") == "ok"
    receiver.wait_count(1)

    api.push(metric, minutes(t0 + 4 * MINUTE, [90.0]))  # a mix keeps the state
    evaluator.run_round(now=t0 + 4 * MINUTE + 1)
    assert api.get(f"/v1/alarm/{aid}/state") == "ok"

    api.push(metric, minutes(t0 + 5 * MINUTE, [91.0, 92.0]))
    evaluator.run_round(now=t0 + 6 * MINUTE + 1)
    assert api.get(f"/v1/alarm/{aid}/state") == "alarm"
    receiver.wait_count(2)

    api.push(metric, minutes(t0 + 7 * MINUTE, [5.0, 5.0, 7.0]))
    evaluator.run_round(now=t0 + 9 * MINUTE + 1)
    assert api.get(f"/v1/alarm/{aid}/state") == "ok"

    calls = receiver.wait_count(3)
    assert [path for path, _ in calls] == ["/ok", "/alarm", "/ok"]
    assert [(b["previous"], b["current"]) for _, b in calls] == [
        ("insufficient data", "ok"), ("ok", "alarm"), ("alarm", "ok")]
    first = calls[1][1]
    assert set(first) == {"alarm_name", "alarm_id", "severity", "previous", "current",
                          "reason", "reason_data"}
    assert first["alarm_id"] == aid and first["alarm_name"] == "cpu-high"
    assert first["severity"] == "critical"
    assert first["reason_data"] == {"type": "threshold", "disposition": "outside", "count": 3,
                                    "most_recent": 92.0}
    assert first["reason"].startswith("Transition to alarm due to 3 samples outside threshold")

    history = api.get(f"/v1/alarm/{aid}/history")  # newest first
    assert sorted(h["type"] for h in history) == ["creation"] + ["state transition"] * 3
    transitions = [json.loads(h["detail"]) for h in history if h["type"] != "creation"]
    assert [d["state"] for d in transitions] == ["ok", "alarm", "ok"]
    assert transitions[1]["transition_reason"].startswith("Transition to alarm")


def test_repeat_actions_notify_every_evaluation(api, evaluator, receiver):
    t0 = base_time()
    metric = api.metric()
    api.alarm(alarm_body("repeat", by_metrics([metric], evaluation_periods=1), receiver.url,
                         repeat_actions=True))
    api.push(metric, minutes(t0, [99.0, 99.0]))
    evaluator.run_round(now=t0 + MINUTE + 1)
    evaluator.run_round(now=t0 + MINUTE + 2)
    calls = receiver.wait_count(2)
    assert [b["current"] for _, b in calls] == ["alarm", "alarm"]
    assert calls[1][1]["reason"].startswith("Remaining as alarm")


def test_hanging_webhook_does_not_delay_another_alarm(api, evaluator, receiver):
    other = Receiver()
    try:
        t0 = base_time()
        metric = api.metric()
        rule = by_metrics([metric], evaluation_periods=1)
        api.alarm(alarm_body("hangs", rule, alarm_actions=[f"{receiver.url}/hang"]))
        api.alarm(alarm_body("fine", rule, alarm_actions=[f"{other.url}/fine"]))
        api.push(metric, minutes(t0, [80.0, 80.0]))
        report = evaluator.run_round(now=t0 + MINUTE + 1)
        assert report.transitions == 2
        # The other target gets its call while the first one is still held open.
        (path, body), = other.wait_count(1)
        assert body["alarm_name"] == "fine"
        receiver.wait_count(1)
        assert receiver.hanging == 1
        # And the next rounds go on while it hangs.
        api.push(metric, minutes(t0 + 2 * MINUTE, [10.0]))
        evaluator.run_round(now=t0 + 2 * MINUTE + 1)
        states = {a["name"]: a["state"] for a in api.get("/v1/alarm")}
        assert states == {"hangs": "ok", "fine": "ok"}
    finally:
        other.close()


def test_time_constraint_suppresses_evaluation_outside_its_window(api, evaluator):
    day = base_time() - base_time() % 86400 - 86400  # yesterday 00:00 UTC
    metric = api.metric()
    # 16:30 in Kolkata (UTC+5:30, no DST) is 11:00 UTC; the window lasts an hour.
    tc = [{"name": "office", "start": "30 16 * * *", "duration": 3600,
           "timezone": "Asia/Kolkata"}]
    aid = api.alarm(alarm_body("constrained", by_metrics([metric], evaluation_periods=2),
                               time_constraints=tc))["alarm_id"]
    assert api.get(f"/v1/alarm/{aid}")["time_constraints"][0]["description"]
    ten = day + 10 * 3600
    api.push(metric, minutes(ten - 5 * MINUTE, [99.0] * 6))
    report = evaluator.run_round(now=ten + 1)
    assert report.outside_time_constraints == 1 and report.evaluated == 0
    assert api.get(f"/v1/alarm/{aid}/state") == "insufficient data"

    eleven = day + 11 * 3600
    api.push(metric, minutes(eleven - 3 * MINUTE, [99.0] * 4))
    report = evaluator.run_round(now=eleven + 1)
    assert report.outside_time_constraints == 0
    assert api.get(f"/v1/alarm/{aid}/state") == "alarm"


def seasonal(t: int) -> float:
    """An hourly cycle with a little deterministic wobble."""
    phase = 2 * math.pi * (t % 3600) / 3600
    return 50 + 20 * math.sin(phase) + 0.5 * math.sin(t / 37.0)


def test_forecast_rule_fires_on_an_anomaly_not_on_the_normal_series(api, evaluator, receiver):
    end = base_time()
    start = end - 4 * 3600
    normal, anomalous = api.metric(), api.metric()
    series = [(t, seasonal(t)) for t in range(start, end + 1, MINUTE)]
    api.push(normal, series)
    api.push(anomalous, series[:-3] + [(t, v + 30) for t, v in series[-3:]])
    rule = {"aggregation_method": "mean", "granularity": 60, "evaluation_periods": 2,
            "season": 3600, "seasons": 3, "window": 180, "deviations": 4.0}
    ids = {}
    for name, metric in (("normal", normal), ("anomalous", anomalous)):
        ids[name] = api.alarm(alarm_body(name, {"metric": metric, **rule}, receiver.url,
                                         type_="rrd_forecast"))["alarm_id"]
    evaluator.run_round(now=end + 1)
    assert api.get(f"/v1/alarm/{ids['normal']}/state") == "ok"
    assert api.get(f"/v1/alarm/{ids['anomalous']}/state") == "alarm"
    calls = {b["alarm_name"]: b for _, b in receiver.wait_count(2)}
    assert calls["anomalous"]["reason_data"]["type"] == "forecast"
    assert calls["anomalous"]["reason_data"]["disposition"] == "outside"


def test_moving_average_ignores_a_spike_but_not_a_sustained_rise(api, evaluator):
    t0 = base_time()
    metric = api.metric()
    rule = {"metric": metric, "window": 300, "aggregation_method": "mean", "granularity": 60,
            "evaluation_periods": 1, "comparison_operator": "gt", "threshold": 50.0}
    aid = api.alarm(alarm_body("ma", rule, type_="rrd_moving_average_threshold"))["alarm_id"]
    api.push(metric, minutes(t0, [10.0] * 9 + [100.0]))  # one spike: mean of 5 min is 28
    evaluator.run_round(now=t0 + 9 * MINUTE + 1)
    assert api.get(f"/v1/alarm/{aid}/state") == "ok"
    api.push(metric, minutes(t0 + 10 * MINUTE, [100.0] * 3))
    evaluator.run_round(now=t0 + 12 * MINUTE + 1)
    assert api.get(f"/v1/alarm/{aid}/state") == "alarm"


def test_composite_rule(api, evaluator):
    t0 = base_time()
    a, b = api.metric(), api.metric()
    leaf = {"type": "gnocchi_aggregation_by_metrics_threshold", "granularity": 60,
            "evaluation_periods": 1, "comparison_operator": "gt", "threshold": 50.0,
            "aggregation_method": "mean"}
    tree = {"and": [{**leaf, "metrics": [a]},
                    {"or": [{**leaf, "metrics": [b]}, {**leaf, "metrics": [a], "threshold": 95}]}]}
    aid = api.alarm({"name": "both", "type": "composite", "composite_rule": tree})["alarm_id"]
    api.push(a, minutes(t0, [90.0, 90.0]))
    evaluator.run_round(now=t0 + MINUTE + 1)  # b has no data: the "or" could still alarm
    assert api.get(f"/v1/alarm/{aid}/state") == "insufficient data"
    api.push(b, minutes(t0, [10.0, 10.0]))
    evaluator.run_round(now=t0 + MINUTE + 2)
    assert api.get(f"/v1/alarm/{aid}/state") == "ok"
    api.push(b, minutes(t0 + 2 * MINUTE, [70.0]))
    api.push(a, minutes(t0 + 2 * MINUTE, [90.0]))
    evaluator.run_round(now=t0 + 2 * MINUTE + 1)
    shown = api.get(f"/v1/alarm/{aid}")
    assert shown["state"] == "alarm"
    assert shown["composite_rule"]["and"][1]["or"][1]["threshold"] == 95.0


def test_each_metric_is_read_once_per_round(api, evaluator):
    t0 = base_time()
    metric, other = api.metric(), api.metric()
    for i, threshold in enumerate((10, 20, 30)):
        api.alarm(alarm_body(f"a{i}", by_metrics([metric], threshold=threshold,
                                                 evaluation_periods=1 + i)))
    api.alarm(alarm_body("pair", by_metrics([metric, other])))
    api.push(metric, minutes(t0, [25.0] * 4))
    api.push(other, minutes(t0, [5.0] * 4))
    report = evaluator.run_round(now=t0 + 3 * MINUTE + 1)
    assert report.evaluated == 4 and report.reads == 2
    states = {a["name"]: a["state"] for a in api.get("/v1/alarm")}
    # a0: 25 > 10; a1: 25 > 20; a2: 25 < 30; pair: mean 15 < 50.
    assert states == {"a0": "alarm", "a1": "alarm", "a2": "ok", "pair": "ok"}


def test_resource_rules_over_polled_resources(api, evaluator, store):
    t0 = base_time()
    samples = []
    for host, load in (("web1", 5.0), ("web2", 9.0), ("db1", 1.0)):
        res = Resource(resource_id_of(host), "host", host, {"host_name": host,
                                                            "role": host[:-1]})
        samples += [Sample(res, "load", "", Kind.GAUGE, load, t)
                    for t in range(t0, t0 + 3 * MINUTE, MINUTE)]
    store.write(PollResult(samples=samples))
    api.alarm(alarm_body("web1", {"resource_id": resource_id_of("web1"),
                                  "resource_type": "host", "metric": "load",
                                  "comparison_operator": "ge", "threshold": 5.0,
                                  "aggregation_method": "mean"},
                         type_="gnocchi_resources_threshold"))
    api.alarm(alarm_body("webs", {"resource_type": "host", "metric": "load",
                                  "query": json.dumps({"and": [
                                      {"=": {"role": "web"}},
                                      {"!=": {"id": resource_id_of("db1")}}]}),
                                  "comparison_operator": "gt", "threshold": 6.5,
                                  "aggregation_method": "max"},
                         type_="gnocchi_aggregation_by_resources_threshold"))
    api.alarm(alarm_body("all-mean", {"resource_type": "host", "metric": "load",
                                      "query": {}, "comparison_operator": "gt",
                                      "threshold": 5.0, "aggregation_method": "mean"},
                         type_="gnocchi_aggregation_by_resources_threshold"))
    evaluator.run_round(now=t0 + 2 * MINUTE + 1)
    states = {a["name"]: a["state"] for a in api.get("/v1/alarm")}
    assert states == {"web1": "alarm", "webs": "alarm", "all-mean": "ok"}


def resource_id_of(host: str) -> str:
    from appliance.model import resource_id_for

    return resource_id_for(f"test://{host}")
