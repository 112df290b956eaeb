"""The HTTP face of the appliance: Gnocchi-compatible v1 API (and, beside it, the status page).

``create_app(settings)`` builds an app; nothing exists at import time (STYLE.md 12). The
store is opened lazily per process, after gunicorn has forked its workers, because a SQLite
connection must not cross a fork.
"""

from __future__ import annotations

import time

from flask import Flask, current_app

from appliance import __version__
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
    return app


def _install_store(app: Flask, store: Store) -> None:
    app.extensions["appliance.store"] = store
    app.extensions["appliance.verifier"] = Verifier(store.settings, store.index)


def get_store() -> Store:
    """This process's store, opened at first use."""
    ext = current_app.extensions
    if "appliance.store" not in ext:
        _install_store(current_app, Store(ext["appliance.settings"], seed=False))
    return ext["appliance.store"]


def get_settings() -> Settings:
    return current_app.extensions["appliance.settings"]
