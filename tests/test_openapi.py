"""Fuzz the API against its own OpenAPI document (schemathesis, in-process over WSGI).

Every operation of every v1 blueprint, alarms included, and ``/metrics`` gets bounded
generated examples against a real store, valid ones and ones that break the schema (which
must be 4xx, never 5xx); any 5xx, an undocumented status code, a wrong content type or a body
that does not match the documented schema fails the test. The document is OpenAPI 3.1
(its schemas are the pydantic models' JSON Schema), which schemathesis 3 reads behind an
experimental switch.
"""

from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import DataGenerationMethod
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from appliance import tokens
from appliance.web.api import create_app
from tests.test_alarms import alarm_body, by_metrics

schemathesis.experimental.OPEN_API_3_1.enable()


@schemathesis.serializer("application/x-protobuf")
class RawBytes:
    """Remote write bodies: generated binary strings are sent as they are (the receiver must
    answer 4xx to garbage, never 5xx)."""

    @staticmethod
    def _data(value) -> dict:
        return {"data": value if isinstance(value, bytes) else str(value).encode()}

    def as_requests(self, context, value) -> dict:
        return self._data(value)

    def as_werkzeug(self, context, value) -> dict:
        return self._data(value)

#: Blueprints whose every route must be in the document.
DOCUMENTED_BLUEPRINTS = {"status", "resources", "metrics", "archive_policies", "batch",
                         "aggregates", "aggregation", "alarms", "prometheus", "snmp_targets",
                         "receivers", "promql"}
CHECKS = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
)


@pytest.fixture
def app_and_token(store):
    token = tokens.create(store.index, "fuzzer", "admin")
    app = create_app(store.settings, store)
    client = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    # Something to find: a resource with a metric and measures.
    r = client.post("/v1/resource/generic", headers=auth,
                    json={"id": "fuzz", "metrics": {"m": {"archive_policy_name": "low"}}})
    mid = r.json["metrics"]["m"]
    now = int(time.time()) // 300 * 300
    client.post(f"/v1/metric/{mid}/measures", headers=auth,
                json=[{"timestamp": now - 600, "value": 1}, {"timestamp": now - 300, "value": 2}])
    r = client.post("/v1/alarm", headers=auth,
                    json=alarm_body("fuzz", by_metrics([mid], granularity=300)))
    assert r.status_code == 201, r.json
    return app, token


@pytest.fixture
def api_schema(app_and_token):
    app, _ = app_and_token
    # validate_schema: the document itself must be valid OpenAPI 3.1.
    return schemathesis.from_wsgi("/v1/openapi.json", app, validate_schema=True,
                                  data_generation_methods=DataGenerationMethod.all())


schema = schemathesis.from_pytest_fixture("api_schema")


def test_openapi_document_is_served_without_token(app_and_token):
    app, _ = app_and_token
    r = app.test_client().get("/v1/openapi.json")
    assert r.status_code == 200 and r.json["openapi"].startswith("3.")
    routes = {str(rule) for rule in app.url_map.iter_rules()
              if rule.endpoint.split(".")[0] in DOCUMENTED_BLUEPRINTS}
    documented = {p.replace("{", "<").replace("}", ">") for p in r.json["paths"]}
    flask_style = {rule.replace("<type_>", "<type>") for rule in routes}
    assert flask_style - documented - {"/v1/openapi.json"} == set()


@schema.parametrize()
@settings(max_examples=15, deadline=None,
          suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_matches_its_openapi_document(case, app_and_token):
    _, token = app_and_token
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
