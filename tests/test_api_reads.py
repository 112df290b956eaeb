"""The measures read path's shortcuts keep the API's promises.

Tokens and metrics are remembered per process until one may have changed
(:mod:`appliance.index.memo`), measures are encoded from pre-encoded timestamps
(:func:`appliance.web.api.jsonio.points`) and API requests skip the session signer. Each test
here drives the real app over a real store and checks what a client would see.
"""

from __future__ import annotations

import datetime as dt
import re
import time

import numpy as np
import orjson
import pytest

from appliance import tokens
from appliance.index import Index
from appliance.store import Store
from appliance.web.api import create_app, jsonio


@pytest.fixture
def client(store: Store):
    return create_app(store.settings, store).test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def other_process(store: Store) -> Index:
    """A second connection to the index file, as ``appliance token`` or another worker has."""
    return Index(store.settings.index_path)


def test_a_token_revoked_elsewhere_is_refused_at_the_next_request(client, store):
    token = tokens.create(store.index, "ops", "reader")
    for _ in range(2):  # the second answer comes from the memo
        assert client.get("/v1/metric", headers=bearer(token)).status_code == 200
    index = other_process(store)
    try:
        tokens.revoke(index, "ops")
    finally:
        index.close()
    assert client.get("/v1/metric", headers=bearer(token)).status_code == 401


def test_a_token_created_elsewhere_is_accepted_at_the_next_request(client, store):
    index = other_process(store)
    try:
        assert client.get("/v1/metric", headers=bearer("not-yet")).status_code == 401
        token = tokens.create(index, "late", "admin")
    finally:
        index.close()
    assert client.get("/v1/metric", headers=bearer(token)).status_code == 200


def test_a_token_revoked_through_this_process_is_refused_at_the_next_request(client, store):
    token = tokens.create(store.index, "ops", "admin")
    assert client.get("/v1/metric", headers=bearer(token)).status_code == 200
    tokens.revoke(store.index, "ops")  # through the very connection the memo reads
    assert client.get("/v1/metric", headers=bearer(token)).status_code == 401


def test_a_metric_deleted_elsewhere_is_gone_at_the_next_request(client, store):
    token = tokens.create(store.index, "ops", "admin")
    metric = store.index.create_metric(None, "W", None, "low", creator="test")
    path = f"/v1/metric/{metric.id}/measures"
    assert client.get(path, headers=bearer(token)).status_code == 200
    index = other_process(store)
    try:
        index.delete_metric(metric.id)
    finally:
        index.close()
    r = client.get(path, headers=bearer(token))
    assert r.status_code == 404 and r.json["description"].startswith(f"Metric {metric.id}")


def test_a_day_of_measures_reads_back_as_gnocchi_triples(client, store):
    token = tokens.create(store.index, "ops", "admin")
    metric = store.index.create_metric(None, "W", None, "medium", creator="test")
    first = (int(time.time()) // 60 - 1440) * 60
    points = [(first + 60 * k, k / 4) for k in range(1440)]  # exact in binary
    store.write_measures([(metric, points)])
    r = client.get(f"/v1/metric/{metric.id}/measures",
                   query_string={"granularity": 60, "start": first, "stop": first + 86400},
                   headers=bearer(token))
    assert r.status_code == 200
    iso = [dt.datetime.fromtimestamp(ts, dt.UTC).isoformat() for ts, _ in points]
    assert r.json == [[stamp, 60.0, value] for stamp, (_, value) in zip(iso, points, strict=True)]


@pytest.mark.parametrize("offset", [0.0, 0.5], ids=["grid", "off-grid"])
@pytest.mark.parametrize("dropna", [True, False])
def test_points_encode_like_plain_triples(offset, dropna):
    times = 1_700_000_040.0 + offset + 60.0 * np.arange(50)
    values = np.linspace(-1e16, 5e-324, 50)
    values[[3, 17]] = np.nan
    values[20] = np.inf
    expected = [
        [jsonio.iso(t), 60.0, v if np.isfinite(v) else None]
        for t, v in zip(times.tolist(), values.tolist(), strict=True)
        if not (dropna and np.isnan(v))
    ]
    got = orjson.loads(orjson.dumps(jsonio.points(times, values, 60.0, dropna)))
    assert got == expected


def test_api_requests_get_no_session_cookie_and_the_status_page_login_still_signs_in(
    client, store
):
    token = tokens.create(store.index, "ops", "admin")
    r = client.get("/v1/metric", headers=bearer(token))
    assert r.status_code == 200 and "Set-Cookie" not in r.headers
    login = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.get_data(as_text=True))
    r = client.post("/login", data={"token": token, "csrf_token": csrf.group(1)})
    assert r.status_code == 302 and "appliance_session=" in r.headers["Set-Cookie"]
    assert client.get("/").status_code == 200
