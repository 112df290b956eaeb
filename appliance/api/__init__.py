"""The HTTP face of the appliance: Gnocchi-compatible v1 API (and, beside it, the status page).

``create_app(settings)`` builds an app; nothing exists at import time (STYLE.md 12). The
store is opened lazily per process, after gunicorn has forked its workers, because a SQLite
connection must not cross a fork.
"""

from __future__ import annotations

import time

from flask import Flask, Request, current_app
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from appliance import __version__
from appliance.api.memo import IndexMemo
from appliance.config import Settings
from appliance.store import Store
from appliance.tokens import Verifier

#: v1 blueprints, registered in this order (a plain list, not entry points).
V1_BLUEPRINTS = (
    "appliance.api.v1.status",
    "appliance.api.v1.resources",
    "appliance.api.v1.metrics",
    "appliance.api.v1.archive_policies",
    "appliance.api.v1.batch",
    "appliance.api.v1.aggregates",
    "appliance.api.v1.aggregation",
    "appliance.api.openapi",
    "appliance.api.v1.alarms",
)


def create_app(settings: Settings, store: Store | None = None) -> Flask:
    import importlib

    from appliance.api import auth, errors

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
    app.extensions["appliance.settings"] = settings
    app.extensions["appliance.started"] = time.time()
    app.extensions["appliance.version"] = __version__
    if store is not None:
        _install_store(app, store)
    errors.init_app(app)
    auth.init_app(app)
    for name in V1_BLUEPRINTS:
        app.register_blueprint(importlib.import_module(name).bp, url_prefix="/v1")
    from appliance.api import prometheus

    app.register_blueprint(prometheus.bp)
    app.register_blueprint(importlib.import_module("appliance.ui").bp)  # the status page
    from appliance.api.hotpath import MeasuresFastPath

    app.wsgi_app = MeasuresFastPath(app, app.wsgi_app)  # type: ignore[method-assign]
    from appliance import tls

    tls.secure(app, settings)
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


def _install_store(app: Flask, store: Store) -> None:
    app.extensions["appliance.store"] = store
    app.extensions["appliance.verifier"] = Verifier(store.settings, store.index)
    app.extensions["appliance.memo"] = IndexMemo(store.index)


def store_of(app: Flask) -> Store:
    """``app``'s store in this process, opened at first use."""
    ext = app.extensions
    if "appliance.store" not in ext:
        _install_store(app, Store(ext["appliance.settings"], seed=False))
    return ext["appliance.store"]


def memo_of(app: Flask) -> IndexMemo:
    """``app``'s memo of index answers (tokens, metrics), opened with the store."""
    store_of(app)
    return app.extensions["appliance.memo"]


def get_store() -> Store:
    """This process's store, opened at first use."""
    return store_of(current_app)


def get_settings() -> Settings:
    return current_app.extensions["appliance.settings"]
