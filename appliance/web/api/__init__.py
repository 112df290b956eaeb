"""The HTTP face of the appliance: Gnocchi-compatible v1 API (and, beside it, the status page).

``create_app(settings)`` builds an app; nothing exists at import time (STYLE.md 12). The
factory registers the blueprints, the API's and the status page's (:mod:`appliance.web.ui`) as
siblings; the handles both use (settings, store, memo) are in :mod:`appliance.web.context`.
"""

from __future__ import annotations

import time

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from appliance import __version__, tls
from appliance.config import Settings
from appliance.store import Store
from appliance.web import ui
from appliance.web.api import auth, errors, openapi, prometheus, promql
from appliance.web.api.hotpath import MeasuresFastPath
from appliance.web.api.v1 import (
    aggregates,
    aggregation,
    alarms,
    archive_policies,
    batch,
    metrics,
    receivers,
    resources,
    snmp_targets,
    status,
)
from appliance.web.context import install_settings, install_store

#: Blueprints under ``/v1``, registered in this order (a plain list, not entry points).
V1_BLUEPRINTS = (
    status.bp,
    resources.bp,
    metrics.bp,
    archive_policies.bp,
    batch.bp,
    aggregates.bp,
    aggregation.bp,
    openapi.bp,
    alarms.bp,
    snmp_targets.bp,
    receivers.bp,
)


def create_app(settings: Settings, store: Store | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        OPEN_READ=settings.api.open_read,
        MAX_CONTENT_LENGTH=settings.api.max_body_bytes,
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False
    app.session_interface = CookielessFastPath()
    # gnocchiclient asks for collections with a trailing slash (``v1/archive_policy/``).
    app.url_map.strict_slashes = False
    install_settings(app, settings)
    app.extensions["appliance.started"] = time.time()
    app.extensions["appliance.version"] = __version__
    if store is not None:
        install_store(app, store)
    errors.init_app(app)
    auth.init_app(app)
    for blueprint in V1_BLUEPRINTS:
        app.register_blueprint(blueprint, url_prefix="/v1")
    app.register_blueprint(prometheus.bp)
    app.register_blueprint(promql.bp)  # /api/v1, the Prometheus query API
    app.register_blueprint(ui.bp)  # the status page
    app.wsgi_app = MeasuresFastPath(app, app.wsgi_app)  # type: ignore[method-assign]
    tls.secure(app, settings)  # under TLS: Secure cookie, HSTS on every response
    return app


class CookielessFastPath(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, minus the signer for a request that sends no cookie.

    Flask builds an itsdangerous serializer at every request just to open the session, a
    tenth of an API GET's time here; API clients send no session cookie, so a new empty
    session needs no signer (saving one still builds it, as before).
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)
