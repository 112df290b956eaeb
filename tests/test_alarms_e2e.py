"""The alarm evaluator as a supervised process of ``appliance run`` (interval 1 s): an alarm
created and fed through the HTTP API changes state and calls its webhook by itself."""

from __future__ import annotations

import time

import requests

from tests.conftest import wait_for
from tests.test_alarms import Receiver, by_metrics, measures_body

MINUTE = 60


def test_supervised_evaluator_fires_webhook(appliance_factory):
    receiver = Receiver()
    try:
        app = appliance_factory({
            "pollsters": {"host": {"enabled": False}},
            "alarms": {"evaluation_interval": 1, "webhook_timeout": 2},
        })
        conf = (app.data_dir / "run" / "supervisord.conf").read_text()
        assert "[program:workers]" in conf  # which forks the evaluator

        def call(method, path, body=None, status=200):
            r = requests.request(method, f"{app.url}{path}", json=body, headers=app.headers,
                                 timeout=10)
            assert r.status_code == status, r.text
            return r.json() if r.content else None

        metric = call("POST", "/v1/metric", {"archive_policy_name": "medium"}, 201)["id"]
        body = {"name": "live", "type": "gnocchi_aggregation_by_metrics_threshold",
                "gnocchi_aggregation_by_metrics_threshold_rule":
                    by_metrics([metric], evaluation_periods=1),
                "alarm_actions": [f"{receiver.url}/alarm"]}
        aid = call("POST", "/v1/alarm", body, 201)["alarm_id"]
        minute = int(time.time()) // MINUTE * MINUTE
        points = [(minute - 3 * MINUTE + i * MINUTE, 99.0) for i in range(4)]
        call("POST", f"/v1/metric/{metric}/measures", measures_body(points), 202)

        (path, payload), = receiver.wait_count(1, timeout=30)
        assert path == "/alarm"
        assert (payload["alarm_id"], payload["current"]) == (aid, "alarm")
        wait_for(lambda: call("GET", f"/v1/alarm/{aid}/state") == "alarm",
                 what="the alarm state through the API")
        history = call("GET", f"/v1/alarm/{aid}/history")
        assert [h["type"] for h in history] == ["state transition", "creation"]
    finally:
        receiver.close()
