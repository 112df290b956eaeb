"""Request bodies checked by their pydantic models at the edge, and the document built from them.

Every kind of body, alarms included, answers a bad field with one shape: 400, JSON
``{"title", "description", "code"}``, the description naming the field's path. The
document's components are the models' own JSON Schema, not a restatement.
"""

from __future__ import annotations

import pytest

from appliance.web.api.openapi import REF
from appliance.web.api.v1.archive_policies import ArchivePolicyCreate
from appliance.web.api.v1.metrics import MetricCreate
from tests.test_alarms import alarm_body, by_metrics
from tests.test_api import api, new_metric  # noqa: F401  (the fixture)

BAD_BODIES = [
    ("POST", "/v1/archive_policy",
     {"name": "p", "definition": [{"granularity": 60, "points": 0}]},
     "definition[0].points must be at least 1"),
    ("POST", "/v1/archive_policy", {"name": "p", "definition": [{"granularity": "7.5s"}]},
     "definition[0].granularity must be whole seconds"),
    ("POST", "/v1/archive_policy",
     {"name": "p", "definition": [{"granularity": 60, "points": 5}], "back_window": -1},
     "back_window must be at least 0"),
    ("POST", "/v1/archive_policy_rule", {"name": "r", "metric_pattern": "x"},
     "archive_policy_name is required"),
    ("POST", "/v1/metric", {"name": "m", "colour": "red"}, "colour is an unknown field"),
    ("POST", "/v1/metric", {"resource_id": "zz"}, "resource_id is not a UUID"),
    ("POST", "/v1/resource/generic", {"id": "r", "metrics": {"cpu": {"unit": ""}}},
     "metrics.cpu.unit must be a non-empty string"),
    ("POST", "/v1/resource/generic", {"id": "r", "nested": {"a": 1}},
     "nested must be a string, number, boolean or null"),
    ("POST", "/v1/resource/generic", [], "the body must be an object"),
    ("POST", "/v1/search/resource/generic", {"=": {"id": "a"}, "or": []},
     "query must have at most 1 item"),
    ("POST", "/v1/aggregates", {"search": "id = 'a'"}, "operations is required"),
    ("POST", "/v1/alarm",
     alarm_body("a", {**by_metrics(["6f1b2c1e-58c2-4a4e-9bd5-1a1e2f7f0c11"]),
                      "granularity": "soon"}),
     "gnocchi_aggregation_by_metrics_threshold_rule.granularity must be a positive integer"),
    ("POST", "/v1/alarm",
     {"name": "c", "type": "composite",
      "composite_rule": {"and": [{"type": "rrd_moving_average_threshold", "window": 60}]}},
     "composite_rule.and[0].threshold is required"),
]


@pytest.mark.parametrize(("method", "path", "body", "needle"), BAD_BODIES)
def test_a_bad_body_is_a_400_naming_the_field(api, method, path, body, needle):  # noqa: F811
    r = api.call(method, path, json=body)
    assert r.status_code == 400, r.json
    assert set(r.json) == {"title", "description", "code"} and r.json["code"] == 400
    assert needle in r.json["description"]


def test_resource_patch_refuses_fixed_fields_and_checks_new_metrics(api):  # noqa: F811
    assert api.post("/v1/resource/generic", json={"id": "p1"}).status_code == 201
    r = api.call("PATCH", "/v1/resource/generic/p1", json={"started_at": "2026-01-01"})
    assert r.status_code == 400 and "started_at cannot be changed" in r.json["description"]
    r = api.call("PATCH", "/v1/resource/generic/p1",
                 json={"metrics": {"load": {"archive_policy_name": "low", "x": 1}}})
    assert r.status_code == 400 and "metrics.load.x" in r.json["description"]
    r = api.call("PATCH", "/v1/resource/generic/p1",
                 json={"metrics": {"load": {"archive_policy_name": "low"}}})
    assert r.status_code == 200 and set(r.json["metrics"]) == {"load"}


def test_alarm_state_body_is_checked_by_its_schema(api):  # noqa: F811
    metric = new_metric(api)
    aid = api.post("/v1/alarm", json=alarm_body("s", by_metrics([metric]))).json["alarm_id"]
    r = api.call("PUT", f"/v1/alarm/{aid}/state", json="sleepy")
    assert r.status_code == 400 and r.json["description"].startswith("state must be one of")


def test_components_are_the_models_json_schema(api):  # noqa: F811
    doc = api.get("/v1/openapi.json").json
    assert doc["openapi"] == "3.1.0"
    schemas = doc["components"]["schemas"]
    for model in (ArchivePolicyCreate, MetricCreate):
        own = model.model_json_schema(ref_template=REF)
        for name, nested in own.pop("$defs", {}).items():  # hoisted into the components
            assert schemas[name] == nested
        assert schemas[model.__name__] == own
    post = doc["paths"]["/v1/alarm"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": REF.format(model="Alarm")}
    variants = {ref["$ref"].rsplit("/", 1)[1] for ref in schemas["Alarm"]["oneOf"]}
    assert variants == {"GnocchiResourcesThresholdAlarm",
                        "GnocchiAggregationByMetricsThresholdAlarm",
                        "GnocchiAggregationByResourcesThresholdAlarm",
                        "RrdMovingAverageThresholdAlarm", "RrdForecastAlarm", "EventAlarm",
                        "CompositeAlarm"}
    limit = next(p for p in doc["paths"]["/v1/metric"]["get"]["parameters"]
                 if p["name"] == "limit")
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000}
