"""``/v1/alarm`` over the real Flask app and store: shapes, validation, auth, pagination,
history and state, as Aodh's v2 API has them."""

from __future__ import annotations

import json

import pytest

from tests.test_alarms import Api, alarm_body, by_metrics

RULE_KEY = "gnocchi_aggregation_by_metrics_threshold_rule"


@pytest.fixture
def api(settings, store):
    return Api(settings, store)


def test_create_show_and_aodh_shape(api):
    metric = api.metric()
    created = api.alarm(alarm_body("a", by_metrics([metric]), "http://127.0.0.1:9/x",
                                    description="cpu"))
    shown = api.get(f"/v1/alarm/{created['alarm_id']}")
    assert shown == created
    assert set(shown) == {
        "alarm_id", "name", "description", "type", RULE_KEY, "enabled", "state",
        "state_reason", "state_timestamp", "timestamp", "severity", "ok_actions",
        "alarm_actions", "insufficient_data_actions", "repeat_actions", "time_constraints",
        "user_id", "project_id"}
    assert shown[RULE_KEY] == {"metrics": [metric], "comparison_operator": "gt",
                               "threshold": 50.0, "aggregation_method": "mean",
                               "granularity": 60, "evaluation_periods": 3}
    assert (shown["state"], shown["severity"], shown["enabled"]) == (
        "insufficient data", "low", True)
    assert shown["alarm_actions"] == ["http://127.0.0.1:9/x/alarm"]


@pytest.mark.parametrize(("change", "needle"), [
    ({"granularity": 300}, "granularity 300 is not in archive policy 'medium'"),
    ({"comparison_operator": "bigger"}, "comparison_operator"),
    ({"threshold": None}, "threshold is required"),
    ({"metrics": ["00000000-0000-0000-0000-000000000001"]}, "does not exist"),
    ({"aggregation_method": "last"}, "aggregation method 'last' is not kept"),
    ({"evaluation_periods": 0}, "evaluation_periods must be a positive integer"),
])
def test_invalid_rules_are_400(api, change, needle):
    metric = api.metric()
    rule = {**by_metrics([metric]), **change}
    r = api.client.post("/v1/alarm", json=alarm_body("bad", rule), headers=api.admin)
    assert r.status_code == 400
    body = r.get_json()
    assert set(body) >= {"title", "description"}
    assert needle in body["description"]


@pytest.mark.parametrize(("extra", "needle"), [
    ({"severity": "urgent"}, "severity"),
    ({"alarm_actions": ["ftp://x/y"]}, "not an action URL"),
    ({"time_constraints": [{"name": "t", "start": "not cron", "duration": 10}]},
     "not a cron expression"),
    ({"time_constraints": [{"name": "t", "start": "0 1 * * *", "duration": 10,
                            "timezone": "Mars/Olympus"}]}, "not a time zone"),
    ({"type": "nonsense"}, "type must be one of"),
    ({"bogus": 1}, "unknown field"),
])
def test_invalid_alarms_are_400(api, extra, needle):
    metric = api.metric()
    body = {**alarm_body("bad", by_metrics([metric])), **extra}
    r = api.client.post("/v1/alarm", json=body, headers=api.admin)
    assert r.status_code == 400, r.get_json()
    assert needle in r.get_json()["description"]


def test_forecast_needs_history_its_policy_keeps(api):
    metric = api.metric("low")  # 5 min x 30 days
    rule = {"metric": metric, "granularity": 300, "season": 86400 * 7, "seasons": 5,
            "window": 900}
    r = api.client.post("/v1/alarm", json=alarm_body("f", rule, type_="rrd_forecast"),
                        headers=api.admin)
    assert r.status_code == 400
    assert "looks back" in r.get_json()["description"]


def test_auth_and_errors(api):
    metric = api.metric()
    body = alarm_body("a", by_metrics([metric]))
    assert api.client.get("/v1/alarm").status_code == 401
    assert api.client.post("/v1/alarm", json=body, headers=api.reader).status_code == 403
    aid = api.alarm(body)["alarm_id"]
    assert api.client.post("/v1/alarm", json=body, headers=api.admin).status_code == 409
    assert api.client.delete(f"/v1/alarm/{aid}", headers=api.reader).status_code == 403
    missing = "/v1/alarm/00000000-0000-0000-0000-000000000000"
    assert api.client.get(missing, headers=api.reader).status_code == 404
    assert api.client.get(f"{missing}/history", headers=api.reader).status_code == 404
    assert api.client.get("/v1/alarm/not-a-uuid", headers=api.reader).status_code == 400
    r = api.client.post("/v1/alarm", data="x", headers=api.admin)
    assert r.status_code == 415


def test_list_filters_and_pagination(api):
    metric = api.metric()
    ids = sorted(api.alarm(alarm_body(f"a{i}", by_metrics([metric]),
                                      severity="critical" if i % 2 else "low"))["alarm_id"]
                 for i in range(5))
    r = api.client.get("/v1/alarm?limit=2", headers=api.reader)
    assert [a["alarm_id"] for a in r.get_json()] == ids[:2]
    seen = [a["alarm_id"] for a in r.get_json()]
    while "Link" in r.headers:
        next_url = r.headers["Link"].split(";")[0].strip("<>")
        r = api.client.get(next_url, headers=api.reader)
        seen += [a["alarm_id"] for a in r.get_json()]
    assert seen == ids
    critical = api.get("/v1/alarm?q.field=severity&q.op=eq&q.value=critical")
    assert sorted(a["name"] for a in critical) == ["a1", "a3"]
    assert api.client.get("/v1/alarm?q.field=secret&q.value=1",
                          headers=api.reader).status_code == 400


def test_update_state_history_and_delete(api):
    metric = api.metric()
    created = api.alarm(alarm_body("a", by_metrics([metric])))
    aid = created["alarm_id"]
    body = {**alarm_body("a", by_metrics([metric], threshold=70.0)), "severity": "moderate"}
    r = api.client.put(f"/v1/alarm/{aid}", json=body, headers=api.admin)
    assert r.status_code == 200
    assert r.get_json()[RULE_KEY]["threshold"] == 70.0
    r = api.client.patch(f"/v1/alarm/{aid}", json={"enabled": False}, headers=api.admin)
    assert r.get_json()["enabled"] is False and r.get_json()["severity"] == "moderate"

    r = api.client.put(f"/v1/alarm/{aid}/state", json="alarm", headers=api.admin)
    assert (r.status_code, r.get_json()) == (200, "alarm")
    assert api.get(f"/v1/alarm/{aid}/state") == "alarm"
    assert api.get(f"/v1/alarm/{aid}")["state_reason"] == "Manually set via API"
    r = api.client.put(f"/v1/alarm/{aid}/state", json="sleepy", headers=api.admin)
    assert r.status_code == 400

    assert api.client.delete(f"/v1/alarm/{aid}", headers=api.admin).status_code == 204
    assert api.client.get(f"/v1/alarm/{aid}", headers=api.reader).status_code == 404
    history = api.get(f"/v1/alarm/{aid}/history")  # kept after deletion, newest first
    types = [h["type"] for h in history]
    assert types == ["deletion", "state transition", "rule change", "rule change", "creation"]
    assert set(history[0]) >= {"event_id", "alarm_id", "type", "detail", "timestamp"}
    changes = [json.loads(h["detail"]) for h in history if h["type"] == "rule change"]
    assert changes[0] == {"enabled": False}
    assert changes[1]["severity"] == "moderate" and changes[1]["rule"]["threshold"] == 70.0
    assert json.loads(history[-1]["detail"])["name"] == "a"


def test_composite_rule_validation(api):
    metric = api.metric()
    leaf = {"type": "gnocchi_aggregation_by_metrics_threshold", **by_metrics([metric])}
    ok = api.alarm({"name": "c", "type": "composite",
                    "composite_rule": {"or": [leaf, {"and": [leaf, leaf]}]}})
    assert ok["composite_rule"]["or"][1]["and"][0]["threshold"] == 50.0
    for bad in ({"or": []}, {"xor": [leaf]}, leaf, {"or": [{"type": "composite"}]}):
        r = api.client.post("/v1/alarm", headers=api.admin,
                            json={"name": "d", "type": "composite", "composite_rule": bad})
        assert r.status_code == 400, bad
