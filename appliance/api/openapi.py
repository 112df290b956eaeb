"""The OpenAPI 3 document of the v1 API, served at ``/v1/openapi.json``.

Written by hand next to the views it describes and fuzzed against the running code by
schemathesis in the tests (tests/test_openapi.py), so a drift between the two fails CI.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from appliance import __version__
from appliance.api import jsonio, v1

bp = Blueprint("openapi", __name__)

JSON = "application/json"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


STRING = {"type": "string"}
ERRORS = {
    str(code): {"description": text, "content": {JSON: {"schema": ref("Error")}}}
    for code, text in [
        (400, "Invalid parameter or body (the description names it)"),
        (401, "No valid token"),
        (403, "The token's role may not do this"),
        (404, "No such thing"),
        (409, "Already exists"),
        (413, "Body larger than api.max_body_bytes"),
        (415, "Body is not JSON"),
    ]
}


def ok(schema: dict[str, Any] | None, code: int = 200, what: str = "OK") -> dict[str, Any]:
    out: dict[str, Any] = {"description": what}
    if schema is not None:
        out["content"] = {JSON: {"schema": schema}}
    return {str(code): out, **ERRORS}


def body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def path(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or STRING}


UUID_PATH = {"type": "string", "format": "uuid"}
TIMESTAMP = {"type": "string", "description": "ISO 8601, epoch seconds or -N unit (relative)"}
PAGING = [
    query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
    query("marker", {"type": "string", "format": "uuid"}, "Last id of the previous page"),
]
RESOURCE_LISTING = [
    *PAGING,
    query("sort", STRING, "KEY[:asc|desc], comma separated"),
    query("details", {"type": "boolean"}),
]
TIME_RANGE = [query("start", TIMESTAMP), query("stop", TIMESTAMP)]
MEASURES_QUERY = [
    *TIME_RANGE,
    query("granularity", STRING, "Seconds or a duration (60, 1m); must be in the policy"),
    query("aggregation", {"type": "string", "enum": ["mean", "min", "max", "last"]}),
    query("refresh", {"type": "boolean"}),
]
MEASURE_LIST = {
    "type": "array",
    "maxItems": 1000,
    "items": {
        "type": "object",
        "required": ["timestamp", "value"],
        "properties": {
            "timestamp": {"oneOf": [STRING, {"type": "number"}]},
            "value": {"type": "number"},
        },
    },
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["title", "description", "code"],
        "properties": {"title": STRING, "description": STRING, "code": {"type": "integer"}},
    },
    "ArchivePolicy": {
        "type": "object",
        "required": ["name", "back_window", "aggregation_methods", "definition"],
        "properties": {
            "name": STRING,
            "back_window": {"type": "integer"},
            "aggregation_methods": {"type": "array", "items": STRING},
            "definition": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["granularity", "points", "timespan"],
                    "properties": {"granularity": STRING, "points": {"type": "integer"},
                                   "timespan": STRING},
                },
            },
        },
    },
    "ArchivePolicyCreate": {
        "type": "object",
        "required": ["name", "definition"],
        "properties": {
            "name": STRING,
            "back_window": {"type": "integer", "minimum": 0},
            "aggregation_methods": {"type": "array", "items": STRING},
            "definition": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["granularity"],
                    "properties": {
                        "granularity": {"oneOf": [STRING, {"type": "integer"}]},
                        "points": {"type": "integer"},
                        "timespan": {"oneOf": [STRING, {"type": "integer"}]},
                    },
                },
            },
        },
    },
    "ArchivePolicyRule": {
        "type": "object",
        "required": ["name", "metric_pattern", "archive_policy_name"],
        "properties": {"name": STRING, "metric_pattern": STRING, "archive_policy_name": STRING},
    },
    "ResourceType": {
        "type": "object",
        "required": ["name", "attributes", "state"],
        "properties": {"name": STRING, "attributes": {"type": "object"}, "state": STRING},
    },
    "Resource": {
        "type": "object",
        "required": ["id", "type", "original_resource_id", "started_at", "ended_at",
                     "revision_start", "revision_end", "creator", "metrics"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "type": STRING,
            "original_resource_id": STRING,
            "started_at": STRING,
            "ended_at": nullable(STRING),
            "revision_start": STRING,
            "revision_end": nullable(STRING),
            "creator": STRING,
            "user_id": nullable(STRING),
            "project_id": nullable(STRING),
            "metrics": {"type": "object", "additionalProperties": STRING},
        },
        "additionalProperties": True,
    },
    "ResourceCreate": {
        "type": "object",
        "required": ["id"],
        "properties": {
            "id": STRING,
            "user_id": STRING,
            "project_id": STRING,
            "started_at": STRING,
            "ended_at": STRING,
            "metrics": {"type": "object", "additionalProperties": ref("MetricCreate")},
        },
        "additionalProperties": True,
    },
    "Metric": {
        "type": "object",
        "required": ["id", "name", "unit", "resource_id", "creator", "archive_policy",
                     "archive_policy_name", "kind"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "name": nullable(STRING),
            "unit": nullable(STRING),
            "resource_id": nullable(STRING),
            "creator": STRING,
            "archive_policy": ref("ArchivePolicy"),
            "archive_policy_name": STRING,
            "kind": {"type": "string", "enum": ["gauge", "cumulative"]},
            "resource": ref("Resource"),
        },
    },
    "MetricCreate": {
        "type": "object",
        "properties": {
            "name": STRING,
            "unit": STRING,
            "archive_policy_name": STRING,
            "resource_id": STRING,
        },
        "additionalProperties": False,
    },
    "Measures": {
        "type": "array",
        "description": "[timestamp, granularity, value] triples",
        "items": {"type": "array", "minItems": 3, "maxItems": 3},
    },
    "MeasureList": MEASURE_LIST,
    "WriteReport": {
        "type": "object",
        "description": "Gnocchi answers 202 without a body; the appliance lists what RRD "
                       "refused (timestamps not newer than the metric's last one).",
        "required": ["accepted", "rejected_count", "rejected"],
        "properties": {
            "accepted": {"type": "integer"},
            "rejected_count": {"type": "integer"},
            "rejected": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["metric_id", "timestamp", "reason"],
                    "properties": {"metric_id": STRING, "timestamp": STRING, "reason": STRING},
                },
            },
        },
    },
    "Query": {
        "type": "object",
        "description": "Gnocchi's search: {op: {field: value}}, {and|or: [...]}, {not: q}",
        "maxProperties": 1,
    },
    "Aggregates": {
        "type": "object",
        "required": ["operations"],
        "properties": {
            "operations": {"oneOf": [STRING, {"type": "array"}]},
            "search": {"oneOf": [STRING, ref("Query")]},
            "resource_type": STRING,
        },
        "additionalProperties": False,
    },
}

TYPE = path("type")
RID = path("resource_id")
MID = path("metric_id", UUID_PATH)
NAME = path("name")

PATHS: dict[str, Any] = {
    "/v1/status": {"get": {"responses": ok({"type": "object"})}},
    "/v1/capabilities": {"get": {"responses": ok({"type": "object"})}},
    "/v1/archive_policy": {
        "get": {"responses": ok({"type": "array", "items": ref("ArchivePolicy")})},
        "post": {"requestBody": body(ref("ArchivePolicyCreate")),
                 "responses": ok(ref("ArchivePolicy"), 201)},
    },
    "/v1/archive_policy/{name}": {
        "parameters": [NAME],
        "get": {"responses": ok(ref("ArchivePolicy"))},
        "patch": {"requestBody": body({"type": "object", "properties": {
            "definition": SCHEMAS["ArchivePolicyCreate"]["properties"]["definition"]}}),
            "responses": ok(ref("ArchivePolicy"))},
        "delete": {"responses": ok(None, 204, "Deleted")},
    },
    "/v1/archive_policy_rule": {
        "get": {"responses": ok({"type": "array", "items": ref("ArchivePolicyRule")})},
        "post": {"requestBody": body(ref("ArchivePolicyRule")),
                 "responses": ok(ref("ArchivePolicyRule"), 201)},
    },
    "/v1/archive_policy_rule/{name}": {
        "parameters": [NAME],
        "get": {"responses": ok(ref("ArchivePolicyRule"))},
        "delete": {"responses": ok(None, 204, "Deleted")},
    },
    "/v1/resource_type": {
        "get": {"responses": ok({"type": "array", "items": ref("ResourceType")})},
    },
    "/v1/resource_type/{name}": {
        "parameters": [NAME],
        "get": {"responses": ok(ref("ResourceType"))},
    },
    "/v1/resource/{type}": {
        "parameters": [TYPE],
        "get": {"parameters": RESOURCE_LISTING,
                "responses": ok({"type": "array", "items": ref("Resource")})},
        "post": {"requestBody": body(ref("ResourceCreate")),
                 "responses": ok(ref("Resource"), 201)},
    },
    "/v1/resource/{type}/{resource_id}": {
        "parameters": [TYPE, RID],
        "get": {"responses": ok(ref("Resource"))},
        "patch": {"requestBody": body({"type": "object"}), "responses": ok(ref("Resource"))},
        "delete": {"responses": ok(None, 204, "Deleted with its metrics")},
    },
    "/v1/resource/{type}/{resource_id}/history": {
        "parameters": [TYPE, RID],
        "get": {"parameters": [query("limit", {"type": "integer", "minimum": 1,
                                               "maximum": 1000}),
                               query("marker", {"type": "integer", "minimum": 0})],
                "responses": ok({"type": "array", "items": ref("Resource")})},
    },
    "/v1/resource/{type}/{resource_id}/metric": {
        "parameters": [TYPE, RID],
        "get": {"responses": ok({"type": "array", "items": ref("Metric")})},
        "post": {"requestBody": body({"type": "object",
                                      "additionalProperties": ref("MetricCreate")}),
                 "responses": ok({"type": "array", "items": ref("Metric")})},
    },
    "/v1/resource/{type}/{resource_id}/metric/{name}": {
        "parameters": [TYPE, RID, NAME],
        "get": {"responses": ok(ref("Metric"))},
        "delete": {"responses": ok(None, 204, "Deleted")},
    },
    "/v1/resource/{type}/{resource_id}/metric/{name}/measures": {
        "parameters": [TYPE, RID, NAME],
        "get": {"parameters": MEASURES_QUERY, "responses": ok(ref("Measures"))},
        "post": {"requestBody": body(ref("MeasureList")),
                 "responses": ok(ref("WriteReport"), 202)},
    },
    "/v1/metric": {
        "get": {"parameters": [*PAGING, query("name", STRING),
                               query("resource_id", {"type": "string", "format": "uuid"})],
                "responses": ok({"type": "array", "items": ref("Metric")})},
        "post": {"requestBody": body(ref("MetricCreate")), "responses": ok(ref("Metric"), 201)},
    },
    "/v1/metric/{metric_id}": {
        "parameters": [MID],
        "get": {"responses": ok(ref("Metric"))},
        "delete": {"responses": ok(None, 204, "Deleted")},
    },
    "/v1/metric/{metric_id}/measures": {
        "parameters": [MID],
        "get": {"parameters": MEASURES_QUERY, "responses": ok(ref("Measures"))},
        "post": {"requestBody": body(ref("MeasureList")),
                 "responses": ok(ref("WriteReport"), 202)},
    },
    "/v1/metric/{metric_id}/graph.{fmt}": {
        "parameters": [MID, path("fmt", {"type": "string", "enum": ["svg", "png"]})],
        "get": {
            "parameters": [
                *TIME_RANGE,
                query("width", {"type": "integer", "minimum": 100, "maximum": 3000}),
                query("height", {"type": "integer", "minimum": 50, "maximum": 2000}),
                query("aggregation", {"type": "string", "enum": ["mean", "min", "max", "last"]}),
            ],
            "responses": {
                "200": {"description": "The graph",
                        "content": {"image/svg+xml": {"schema": STRING},
                                    "image/png": {"schema": STRING}}},
                **ERRORS,
            },
        },
    },
    "/v1/batch/metrics/measures": {
        "post": {"requestBody": body({"type": "object", "maxProperties": 50,
                                      "additionalProperties": MEASURE_LIST}),
                 "responses": ok(ref("WriteReport"), 202)},
    },
    "/v1/batch/resources/metrics/measures": {
        "post": {
            "parameters": [query("create_metrics", {"type": "boolean"})],
            "requestBody": body({"type": "object", "maxProperties": 20,
                                 "additionalProperties": {"type": "object",
                                                          "additionalProperties": MEASURE_LIST}}),
            "responses": ok(ref("WriteReport"), 202),
        },
    },
    "/v1/search/resource/{type}": {
        "parameters": [TYPE],
        "post": {"parameters": [*RESOURCE_LISTING, query("filter", STRING)],
                 "requestBody": body(ref("Query"), required=False),
                 "responses": ok({"type": "array", "items": ref("Resource")})},
    },
    "/v1/aggregates": {
        "post": {
            "parameters": [
                *TIME_RANGE,
                query("granularity", STRING),
                query("needed_overlap", {"type": "number", "minimum": 0, "maximum": 100}),
                query("fill", STRING, "A number, null or dropna"),
                query("groupby", STRING),
                query("details", {"type": "boolean"}),
            ],
            "requestBody": body(ref("Aggregates")),
            "responses": ok({"oneOf": [{"type": "object"}, {"type": "array"}]}),
        },
    },
}


def document() -> dict[str, Any]:
    """The document; a v1 blueprint module may add ``OPENAPI_PATHS`` and ``OPENAPI_SCHEMAS``."""
    paths, schemas = dict(PATHS), dict(SCHEMAS)
    for module in v1.BLUEPRINT_MODULES:
        paths.update(getattr(module, "OPENAPI_PATHS", {}))
        schemas.update(getattr(module, "OPENAPI_SCHEMAS", {}))
    return {
        "openapi": "3.0.3",
        "info": {"title": "Telemetry appliance API (Gnocchi v1 subset)", "version": __version__},
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic",
                          "description": "The token as user name, empty password"},
            },
        },
        "security": [{"bearer": []}, {"basic": []}],
        "paths": paths,
    }


@bp.get("/openapi.json")
def openapi():
    return jsonio.response(document())
