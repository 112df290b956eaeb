"""One error shape for every failure: JSON ``{"title", "description"}`` with a 4xx/5xx code.

Gnocchi's clients print ``description``; nothing else (no stack trace) reaches a client.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from appliance.storage.errors import RETRY_AFTER, StoreUnavailable, is_disk_full

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, description: str, title: str | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.title = title


def bad_param(name: str, problem: str) -> ApiError:
    """A 400 that names the parameter, e.g. ``Invalid value for start: ...``."""
    return ApiError(400, f"Invalid value for {name}: {problem}")


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} does not exist")


def _body(status: int, title: str, description: str):
    response = jsonify({"title": title, "description": description, "code": status})
    response.status_code = status
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        from werkzeug.http import HTTP_STATUS_CODES

        return _body(exc.status, exc.title or HTTP_STATUS_CODES.get(exc.status, "Error"),
                     exc.description)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        response = _body(exc.code or 500, exc.name, exc.description or exc.name)
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if isinstance(exc, StoreUnavailable):
            log.warning("store unavailable: %s", exc)
            response = _body(503, "Service Unavailable",
                             f"The measures store is unavailable, retry shortly: {exc}")
            response.headers["Retry-After"] = str(RETRY_AFTER)
            return response
        if is_disk_full(exc):
            log.error("disk full: %s", exc)
            return _body(507, "Insufficient Storage",
                         f"The appliance's data disk is full; nothing was written: {exc}")
        log.exception("unhandled error")
        return _body(500, "Internal Server Error",
                     f"An unexpected error occurred ({type(exc).__name__}); see the log.")
