"""The browser status page: server-rendered HTML over the same store as the API.

``bp`` is registered by :func:`appliance.web.api.create_app`; its child blueprints hold the
pages (:mod:`.pages`) and the sign-in (:mod:`.login`). This module wires what they share:
the session key and cookie flags, the sign-in guard, CSRF checks, security headers and the
template filters. Charts are drawn by rrdtool from the appliance's own files and the CSS/JS
ship in ``static/``: nothing is fetched from another host.
"""

from __future__ import annotations

import time

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from appliance.web.context import settings_of
from appliance.web.ui import formatting, login, pages

bp = Blueprint(
    "ui",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/ui/static",
)
bp.register_blueprint(pages.bp)
bp.register_blueprint(login.bp)

#: Endpoints reachable without a session.
PUBLIC_ENDPOINTS = {"ui.static", "ui.login.login"}
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
SECURITY_HEADERS = {
    # Everything comes from this origin; charts are images, so no inline script at all.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


@bp.record_once
def _setup(state) -> None:
    app = state.app
    login.configure(app, settings_of(app))
    app.jinja_env.filters.update(formatting.FILTERS)


def _versions():
    """Gnocchi's root document, for an API client asking ``/`` (``gnocchi server version``
    reads its ``build``); a browser gets the status page.

    An API client is told apart by asking for JSON or by sending ``Authorization`` (the
    status page signs in with a session cookie, never with that header).
    """
    return {
        "build": current_app.extensions["appliance.version"],
        "versions": [{"id": "v1.0", "status": "CURRENT",
                      "links": [{"href": request.host_url + "v1/", "rel": "self"}]}],
    }


@bp.before_request
def _guard():
    if request.endpoint == "ui.pages.overview" and (
        "Authorization" in request.headers
        or request.accept_mimetypes.best_match(["text/html", "application/json"])
        == "application/json"
    ):
        return _versions()
    if request.method in STATE_CHANGING:
        login.check_csrf()
    if request.endpoint in PUBLIC_ENDPOINTS or not login.login_required():
        return None
    if login.signed_in() is None:
        return redirect(url_for("ui.login.login", next=request.full_path.rstrip("?")))
    return None


@bp.after_request
def _headers(response):
    response.headers.update(SECURITY_HEADERS)
    if response.mimetype == "text/html":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.context_processor
def _globals() -> dict:
    required = login.login_required()
    return {
        "csrf_token": login.csrf_token,
        "csrf_field": login.CSRF_FIELD,
        "now": time.time(),
        "login_required": required,
        "viewer": login.signed_in() if required else None,
    }


@bp.errorhandler(HTTPException)
def _error(exc: HTTPException):
    return render_template("error.html", error=exc), exc.code or 500
