"""Who may see the status page: a token login that leaves a signed session cookie.

When ``api.open_read`` is off, every page needs a session made by posting a valid API token
(checked by the same :class:`~appliance.tokens.Verifier` as the API). The cookie is signed
with ``api.secret_key`` or with a key generated once into ``<data_dir>/session-key``; it
holds the token's name and role, never the token. Every form that changes state carries a
per-session CSRF token.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from datetime import timedelta
from pathlib import Path

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from appliance.config import Settings
from appliance.web.context import get_settings, get_store, verifier_of

log = logging.getLogger(__name__)

SESSION_KEY_FILE = "session-key"
SESSION_LIFETIME = timedelta(hours=12)
CSRF_FIELD = "csrf_token"

bp = Blueprint("login", __name__)


def secret_key(settings: Settings) -> bytes:
    """The configured key, else the data dir's generated one (made once, mode 0600).

    Several gunicorn workers start at once: the key is written to a private temp file and
    hard-linked into place, so exactly one worker's key wins and nobody reads half a file.
    """
    if settings.api.secret_key is not None:
        return settings.api.secret_key.get_secret_value().encode()
    path = settings.data_dir / SESSION_KEY_FILE
    if not path.exists():
        _create_key(path)
    return path.read_bytes().strip()


def _create_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another worker was first; its key is the one
    finally:
        tmp.unlink()


def configure(app: Flask, settings: Settings) -> None:
    app.secret_key = secret_key(settings)
    app.config.update(
        SESSION_COOKIE_NAME="appliance_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )


def login_required() -> bool:
    return not get_settings().api.open_read


def signed_in() -> str | None:
    """The token name of this session, if that token still exists (revoking it signs out)."""
    if "ui_viewer" not in g:
        g.ui_viewer = _known_token(session.get("who"))
    return g.ui_viewer


def _known_token(name: str | None) -> str | None:
    if name is None:
        return None
    if any(t.name == name for t in get_settings().api.tokens):
        return name
    return name if get_store().index.token_repo.exists(name) else None


def csrf_token() -> str:
    token = session.get("csrf")
    if token is None:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Refuse a state-changing request whose form lacks this session's CSRF token."""
    expected = session.get("csrf")
    sent = request.form.get(CSRF_FIELD, "")
    if not expected or not hmac.compare_digest(expected, sent):
        abort(400, "The form has expired or did not come from this page; reload and retry.")


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect to another host."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("ui.pages.overview")


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = _safe_next(request.values.get("next"))
    if not login_required():
        return redirect(next_url)
    error = None
    if request.method == "POST":
        verifier = verifier_of(current_app)
        identity = verifier.verify(request.form.get("token", "").strip())
        if identity is not None:
            session.clear()  # a fresh session: no fixation across the login
            session.permanent = True
            session["who"] = identity.name
            session["role"] = identity.role
            csrf_token()
            log.info("status page: %s signed in", identity.name)
            return redirect(next_url)
        log.warning("status page: sign-in with an unknown token from %s", request.remote_addr)
        error = "That token is not valid."
    status = 401 if error else 200
    return render_template("login.html", error=error, next_url=next_url), status


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("ui.login.login"))
