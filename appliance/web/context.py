"""What the API and the status page share within one Flask app: settings, store, memo.

Both :mod:`appliance.web.api` and :mod:`appliance.web.ui` import this module and neither imports
the other's accessors, so the app factory (:func:`appliance.web.api.create_app`) only registers
blueprints and is no service locator. The store is opened lazily per process, after
gunicorn has forked its workers, because a SQLite connection must not cross a fork.
"""

from __future__ import annotations

from flask import Flask, current_app

from appliance.config import Settings
from appliance.index.memo import IndexMemo
from appliance.store import Store
from appliance.tokens import Verifier

SETTINGS, STORE, VERIFIER, MEMO = (
    "appliance.settings", "appliance.store", "appliance.verifier", "appliance.memo",
)


def install_settings(app: Flask, settings: Settings) -> None:
    app.extensions[SETTINGS] = settings


def install_store(app: Flask, store: Store) -> None:
    """Give ``app`` this process's store, with the token verifier and memo over its index."""
    app.extensions[STORE] = store
    app.extensions[VERIFIER] = Verifier(store.settings, store.index)
    app.extensions[MEMO] = IndexMemo(store.index)


def store_of(app: Flask) -> Store:
    """``app``'s store in this process, opened at first use."""
    ext = app.extensions
    if STORE not in ext:
        install_store(app, Store(ext[SETTINGS], seed=False))
    return ext[STORE]


def memo_of(app: Flask) -> IndexMemo:
    """``app``'s memo of index answers (tokens, metrics), opened with the store."""
    store_of(app)
    return app.extensions[MEMO]


def verifier_of(app: Flask) -> Verifier:
    store_of(app)
    return app.extensions[VERIFIER]


def get_store() -> Store:
    """This process's store, opened at first use."""
    return store_of(current_app)


def settings_of(app: Flask) -> Settings:
    return app.extensions[SETTINGS]


def get_settings() -> Settings:
    return settings_of(current_app)
