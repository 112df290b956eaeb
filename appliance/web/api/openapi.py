"""The OpenAPI 3.1 document of the API (v1 and ``/metrics``), served at ``/v1/openapi.json``.

Nothing here restates a constraint. Each view carries its own path entry (``@operation``,
next to its route), request and response bodies are pydantic models, and the components are
those models' JSON schema (OpenAPI 3.1 speaks JSON Schema 2020-12, which pydantic writes).
The document walks the app's URL map, so a route without an entry is visible at once
(tests/test_openapi.py), and schemathesis fuzzes the running code against the result.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, current_app
from pydantic import BaseModel, TypeAdapter

from appliance import __version__
from appliance.web.api import jsonio

bp = Blueprint("openapi", __name__)

JSON = "application/json"
REF = "#/components/schemas/{model}"
UUID = {"type": "string", "format": "uuid"}
STRING = {"type": "string"}


class Error(BaseModel):
    """Every failure: the title of the status, a description naming the parameter, the code."""

    title: str
    description: str
    code: int


class Named:
    """A schema that is not a model class (a union, a list): shown under ``name``."""

    def __init__(self, name: str, annotation: Any):
        self.name, self.annotation = name, annotation


#: Answers any operation may give (the description of a 400 names the parameter or field).
ERRORS = {
    400: "Invalid parameter or body (the description names it)",
    401: "No valid token",
    403: "The token's role may not do this",
    404: "No such thing",
    409: "Already exists",
    413: "Body larger than api.max_body_bytes",
    415: "Body is not JSON",
    422: "The query cannot be evaluated (Prometheus' execution error)",
    503: "The measures store is unavailable (Retry-After says when to retry)",
    507: "The data disk is full; nothing was written",
}


def query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    """A query parameter of an operation."""
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def operation(ok: Any = None, *, status: int = 200, summary: str = "", body: Any = None,
              body_required: bool = True, params: tuple[dict[str, Any], ...] = (),
              path: dict[str, dict[str, Any]] | None = None,
              content: dict[str, Any] | None = None, body_type: str = JSON) -> Callable:
    """The path entry of the view it decorates (put it under the route decorator).

    ``ok`` is the schema of a success (a model class, :class:`Named`, or a JSON schema that
    may hold either), answered with ``status``; ``body`` that of the request body; ``params``
    its query parameters; ``path`` the schema of path parameters that are not plain strings.
    ``content`` replaces the JSON success body (an image, say); ``body_type`` is the request
    body's media type when it is not JSON (a receiver's protobuf or line protocol).
    """

    def mark(view: Callable) -> Callable:
        view.openapi = {  # type: ignore[attr-defined]
            "ok": ok, "status": status, "summary": summary or _first_line(view.__doc__),
            "body": body, "body_required": body_required, "params": list(params),
            "path": path or {}, "content": content, "body_type": body_type,
        }
        return view

    return mark


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n")[0].rstrip(".")


_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def _public(name: str) -> str:
    """A view argument's name as the document shows it (``type_`` -> ``type``)."""
    return name.rstrip("_")


class _Components:
    """Schemas of the models an operation refers to, each turned into a ``$ref`` once."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def ref(self, item: Any) -> Any:
        """``item`` with every model class (or :class:`Named`) in it replaced by a reference."""
        if isinstance(item, dict):
            return {k: self.ref(v) for k, v in item.items()}
        if isinstance(item, list):
            return [self.ref(v) for v in item]
        if isinstance(item, Named):
            return self._add(item.name, item.annotation)
        if isinstance(item, type) and issubclass(item, BaseModel):
            return self._add(item.__name__, item)
        return item

    def _add(self, name: str, annotation: Any) -> dict[str, str]:
        if name not in self.schemas:
            schema = TypeAdapter(annotation).json_schema(ref_template=REF)
            for sub, definition in schema.pop("$defs", {}).items():
                self._put(sub, definition)
            self._put(name, schema)
        return {"$ref": REF.format(model=name)}

    def _put(self, name: str, schema: dict[str, Any]) -> None:
        if self.schemas.setdefault(name, schema) != schema:
            raise ValueError(f"two different schemas are named {name}")


def _responses(spec: dict[str, Any], components: _Components) -> dict[str, Any]:
    success: dict[str, Any] = {"description": "OK"}
    if spec["content"] is not None:
        success["content"] = spec["content"]
    elif spec["ok"] is not None:
        success["content"] = {JSON: {"schema": components.ref(spec["ok"])}}
    error = {JSON: {"schema": components.ref(Error)}}
    out = {str(spec["status"]): success}
    for code, text in ERRORS.items():
        out.setdefault(str(code), {"description": text, "content": error})
    return out


def _operation(spec: dict[str, Any], arguments: list[str],
               components: _Components) -> dict[str, Any]:
    params = [{"name": _public(a), "in": "path", "required": True,
               "schema": spec["path"].get(a, STRING)} for a in arguments]
    out: dict[str, Any] = {"responses": _responses(spec, components)}
    if spec["summary"]:
        out["summary"] = spec["summary"]
    if params or spec["params"]:
        out["parameters"] = [*params, *spec["params"]]
    if spec["body"] is not None:
        out["requestBody"] = {"required": spec["body_required"],
                              "content": {spec["body_type"]: {
                                  "schema": components.ref(spec["body"])}}}
    return out


def paths(app: Flask) -> tuple[dict[str, Any], dict[str, Any]]:
    """The path entries of every documented view of ``app``, and the components they use."""
    components = _Components()
    out: dict[str, Any] = {}
    for rule in app.url_map.iter_rules():
        spec = getattr(app.view_functions[rule.endpoint], "openapi", None)
        if spec is None:
            continue
        arguments = _ARGUMENT.findall(rule.rule)
        template = _ARGUMENT.sub(lambda m: "{" + _public(m.group(1)) + "}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            out.setdefault(template, {})[method.lower()] = _operation(spec, arguments,
                                                                      components)
    return out, components.schemas


def document(app: Flask) -> dict[str, Any]:
    documented, schemas = paths(app)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Telemetry appliance API (Gnocchi v1 subset)", "version": __version__},
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic",
                          "description": "The token as user name, empty password"},
            },
        },
        "security": [{"bearer": []}, {"basic": []}],
        "paths": documented,
    }


@bp.get("/openapi.json")
def openapi():
    """This document (no token needed); built once per app, whose routes are fixed."""
    extensions = current_app.extensions
    if "appliance.openapi" not in extensions:
        extensions["appliance.openapi"] = jsonio.encode(document(current_app))
    return Response(extensions["appliance.openapi"], mimetype=JSON)
