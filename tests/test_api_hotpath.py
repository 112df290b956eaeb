"""``GET /v1/metric/<id>/measures`` without Flask (appliance.web.api.hotpath) answers exactly
what the Flask route answers, and leaves every other case to Flask.

Each request goes to the app with the fast path and to the same app's Flask ``wsgi_app``
alone (what the app was before the fast path), over one real store; status, headers and
body must be the same bytes.
"""

from __future__ import annotations

import base64
import time

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from appliance import tokens
from appliance.index import Index
from appliance.store import Store
from appliance.web.api import create_app
from appliance.web.api.hotpath import MeasuresFastPath


@pytest.fixture
def app(store: Store):
    app = create_app(store.settings, store)
    app.extensions["test.flask_requests"] = flask_requests = []

    def _count():  # runs only for requests that reach Flask, before the token check
        flask_requests.append(1)

    app.before_request_funcs.setdefault(None, []).insert(0, _count)
    return app


@pytest.fixture
def clients(app):
    assert isinstance(app.wsgi_app, MeasuresFastPath)
    return Client(app, Response), Client(app.wsgi_app.flask_wsgi, Response)


@pytest.fixture
def day(store: Store):
    """A metric with a day of one-minute points and one unknown minute, and an admin token."""
    metric = store.index.create_metric(None, "W", None, "medium", creator="test")
    first = (int(time.time()) // 60 - 1440) * 60
    points = [(first + 60 * k, k * 0.1) for k in range(1440) if k != 700]
    store.write_measures([(metric, points)])
    return metric, first, tokens.create(store.index, "ops", "admin")


def answer(client: Client, path: str, **kwargs) -> tuple[int, list, bytes]:
    r = client.get(path, **kwargs)
    return r.status_code, sorted(r.headers.items()), r.get_data()


def flask_count(app) -> int:
    return len(app.extensions["test.flask_requests"])


def queries(first: int) -> list[dict]:
    return [
        {},
        {"granularity": 60, "start": first, "stop": first + 86400},
        {"granularity": "1 minute", "start": "2000-01-01T00:00:00", "refresh": "true"},
        {"granularity": 3600, "aggregation": "max", "start": first + 3600},
        {"aggregation": "rate:mean", "stop": first + 7200},
    ]


def test_served_without_flask_and_identical_to_the_flask_route(app, clients, day):
    fast, flask_only = clients
    metric, first, token = day
    path = f"/v1/metric/{metric.id}/measures"
    headers = {"Authorization": f"Bearer {token}"}
    for query in queries(first):
        before = flask_count(app)
        got = answer(fast, path, query_string=query, headers=headers)
        assert flask_count(app) == before, f"{query} went through Flask"
        assert got[0] == 200 and len(got[2]) > 2, query
        assert got == answer(flask_only, path, query_string=query, headers=headers), query


def test_basic_auth_as_gnocchiclient_sends_it_takes_the_fast_path(app, clients, day):
    fast, flask_only = clients
    metric, first, token = day
    path = f"/v1/metric/{metric.id}/measures"
    headers = {"Authorization": "basic " + base64.b64encode(f"{token}:".encode()).decode()}
    before = flask_count(app)
    got = answer(fast, path, headers=headers, query_string={"refresh": "False"})
    assert flask_count(app) == before and got[0] == 200
    assert got == answer(flask_only, path, headers=headers, query_string={"refresh": "False"})


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("no token", 401),
        ("unknown token", 401),
        ("bad granularity", 400),
        ("granularity not in policy", 400),
        ("unknown aggregation", 400),
        ("stop before start", 400),
        ("start twice", 400),
        ("not a uuid", 400),
        ("unknown metric", 404),
        ("head", 200),
    ],
)
def test_everything_else_is_answered_by_flask_as_before(app, clients, day, case, status):
    fast, flask_only = clients
    metric, first, token = day
    path = f"/v1/metric/{metric.id}/measures"
    headers = {"Authorization": f"Bearer {token}"}
    query: dict | list = {}
    method = "GET"
    if case == "no token":
        headers = {}
    elif case == "unknown token":
        headers = {"Authorization": "Bearer nope"}
    elif case == "bad granularity":
        query = {"granularity": "often"}
    elif case == "granularity not in policy":
        query = {"granularity": 7}
    elif case == "unknown aggregation":
        query = {"aggregation": "median"}
    elif case == "stop before start":
        query = {"start": first + 60, "stop": first}
    elif case == "start twice":
        query = [("start", first), ("start", first + 60)]
    elif case == "not a uuid":
        path = "/v1/metric/0123456789abcdef0123456789abcdef0/measures"  # 33 hex digits
    elif case == "unknown metric":
        path = "/v1/metric/00000000-0000-4000-8000-000000000000/measures"
    elif case == "head":
        method = "HEAD"
    before = flask_count(app)
    r = fast.open(path, method=method, query_string=query, headers=headers)
    assert flask_count(app) == before + 1, "Flask did not answer"
    assert r.status_code == status
    again = flask_only.open(path, method=method, query_string=query, headers=headers)
    assert (r.status_code, sorted(r.headers.items()), r.get_data()) == (
        again.status_code, sorted(again.headers.items()), again.get_data())
    if status >= 400:
        assert r.json["code"] == status and r.json["description"]


def test_a_token_revoked_elsewhere_is_refused_by_the_fast_path(app, clients, day, store):
    fast, _ = clients
    metric, _, token = day
    path = f"/v1/metric/{metric.id}/measures"
    headers = {"Authorization": f"Bearer {token}"}
    assert fast.get(path, headers=headers).status_code == 200
    other = Index(store.settings.index_path)
    try:
        tokens.revoke(other, "ops")
    finally:
        other.close()
    assert fast.get(path, headers=headers).status_code == 401


def test_a_write_acknowledged_is_read_by_the_next_fast_get(app, clients, day):
    fast, _ = clients
    metric, first, token = day
    headers = {"Authorization": f"Bearer {token}"}
    path = f"/v1/metric/{metric.id}/measures"
    last = first + 60 * 1440
    r = fast.post(path, json=[{"timestamp": last, "value": 42.5}], headers=headers)
    assert r.status_code == 202
    # The bucket of ``last`` completes with the next point, one minute later.
    fast.post(path, json=[{"timestamp": last + 60, "value": 1.0}], headers=headers)
    got = fast.get(path, query_string={"granularity": 60, "start": last}, headers=headers)
    assert got.status_code == 200 and got.json[0][2] == 42.5


def test_a_reader_token_and_open_read(store, day):
    metric, _, _ = day
    reader = tokens.create(store.index, "watcher", "reader")
    app = create_app(store.settings, store)
    client = Client(app, Response)
    path = f"/v1/metric/{metric.id}/measures"
    assert client.get(path, headers={"Authorization": f"Bearer {reader}"}).status_code == 200
    assert client.get(path).status_code == 401
    app.config["OPEN_READ"] = True
    assert client.get(path).status_code == 200
