"""``GET /v1/metric/<id>/measures`` answered without Flask's per-request machinery.

A dashboard panel asks for one metric's day again and again; on this machine class a third
of that request's time went to Flask itself (request context, URL routing, hooks, the
Response object), more than reading the RRD file. This WSGI middleware serves that one
request through the same functions as the Flask route (:func:`auth.identify`,
:func:`metrics.find_metric`, :func:`metrics.measures_of`, :mod:`jsonio`), and only when it
succeeds: any other request, and this one when anything is off (no or an unknown token, a
bad parameter, an unknown metric, a failing daemon), goes to Flask, which answers it as it
answers every request: one error shape, one log, one place that decides.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from flask import Flask
from werkzeug.wrappers import Request

from appliance.web.api import auth, jsonio
from appliance.web.api.v1 import metrics
from appliance.web.context import store_of

_MEASURES = re.compile(r"/v1/metric/([^/]+)/measures")  # the id is checked as the route checks it
_JSON = "application/json"

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


class MeasuresFastPath:
    """Wraps Flask's ``wsgi_app``: ``app.wsgi_app = MeasuresFastPath(app, app.wsgi_app)``."""

    def __init__(self, app: Flask, flask_wsgi: WSGIApp):
        self.app = app
        self.flask_wsgi = flask_wsgi

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "GET":
            match = _MEASURES.fullmatch(environ.get("PATH_INFO", ""))
            if match is not None:
                body = self._measures(environ, match.group(1))
                if body is not None:
                    start_response("200 OK", [("Content-Type", _JSON),
                                              ("Content-Length", str(len(body)))])
                    return [body]
        return self.flask_wsgi(environ, start_response)

    def _measures(self, environ: dict, metric_id: str) -> bytes | None:
        """The response body, or None: Flask then answers the request anew (a read has no
        side effect, so doing part of it twice is harmless)."""
        app = self.app
        try:
            identity = auth.identify(app, environ.get("HTTP_AUTHORIZATION", ""))
            if identity is None and not app.config["OPEN_READ"]:
                return None
            metric = metrics.find_metric(app, metric_id)
            if metric is None:
                return None
            args = Request(environ).args  # parsed as Flask parses them
            return jsonio.encode(metrics.measures_of(store_of(app), metric, args))
        except Exception:  # Flask answers it: its status, its body, its log
            return None
