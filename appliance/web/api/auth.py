"""Who is asking: ``Authorization: Bearer <token>`` or HTTP Basic with the token as user name.

gnocchiclient's default ``gnocchi-basic`` plugin sends ``basic base64(<user>:)``, so
``gnocchi --user <token>`` authenticates. Reading needs any valid token (or nothing when
``api.open_read`` is on); writing needs the ``admin`` role.
"""

from __future__ import annotations

import base64
import binascii

from flask import Flask, g, request

from appliance.tokens import Identity, hash_token
from appliance.web.api.errors import ApiError
from appliance.web.context import memo_of, verifier_of

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
#: What this check guards; the status page keeps its own session login.
API_PREFIXES = ("/v1/", "/metrics", "/api/v1/")
#: POSTs that only read (Gnocchi carries search queries and operations in a body; the
#: Prometheus query API takes form-encoded queries).
READ_ONLY_POSTS = ("/v1/search/", "/v1/aggregates", "/api/v1/query", "/api/v1/series",
                   "/api/v1/labels", "/api/v1/format_query")
#: API paths served without any token.
PUBLIC_PATHS = {"/v1/openapi.json"}


def presented_token(header: str) -> str | None:
    """The token in an ``Authorization`` header's value, or None."""
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and value.strip():
        return value.strip()
    if scheme == "basic" and value.strip():
        try:
            user, _, _password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user or None
    return None


def identify(app: Flask, authorization: str) -> Identity | None:
    """Whose token an ``Authorization`` header's value carries, or None (none, or unknown)."""
    token = presented_token(authorization)
    if token is None:
        return None
    memo = memo_of(app)  # opens the store (and the verifier over its index) in this process
    verifier = verifier_of(app)
    presented = hash_token(token)
    return memo.get(("token", presented), lambda: verifier.lookup(presented))


def init_app(app: Flask) -> None:
    @app.before_request
    def _authenticate():
        if not request.path.startswith(API_PREFIXES) or request.path in PUBLIC_PATHS:
            return
        g.identity = identify(app, request.headers.get("Authorization", ""))
        reads = request.method in SAFE_METHODS or (
            request.method == "POST" and request.path.startswith(READ_ONLY_POSTS)
        )
        if reads:
            if g.identity is None and not app.config["OPEN_READ"]:
                raise _unauthorized()
            return
        if g.identity is None:
            raise _unauthorized()
        if not g.identity.can_write:
            raise ApiError(403, "This token's role (reader) may not change anything")

    @app.after_request
    def _challenge(response):
        if response.status_code == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="appliance"'
        return response


def creator() -> str:
    """The name of the token making this request (recorded as a resource's or metric's creator)."""
    identity = g.get("identity")
    return identity.name if identity is not None else "anonymous"


def _unauthorized() -> ApiError:
    return ApiError(401, "Authentication required: send 'Authorization: Bearer <token>'")

