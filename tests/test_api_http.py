"""The API as clients reach it: gunicorn under ``appliance run``, over real TCP connections.

Each worker remembers which token is whose until the index changes; a revoke by
``appliance token`` must still be refused by every worker at its next request.
"""

from __future__ import annotations

import http.client
import subprocess
import sys

from tests.conftest import RunningAppliance, wait_for

OFF = {"host": {"enabled": False}, "sensors": {"enabled": False},
       "libvirt": {"enabled": False}}


def call(conn: http.client.HTTPConnection, path: str, token: str) -> http.client.HTTPResponse:
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    response.read()
    return response


def token_cli(app: RunningAppliance, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "appliance", "token", "--config", str(app.config_path),
         "--data-dir", str(app.data_dir), *args],
        check=True, capture_output=True, text=True, timeout=30,
    ).stdout


def test_every_worker_refuses_a_revoked_token_at_its_next_request(appliance_factory):
    app = appliance_factory({"pollsters": OFF})
    reader = token_cli(app, "create", "ro", "--role", "reader").split()[-1]
    # http.client reconnects when a worker closes the connection (sync workers do).
    conns = [http.client.HTTPConnection("127.0.0.1", app.port, timeout=10) for _ in range(4)]
    try:
        for conn in conns:  # requests spread over the workers, which remember the token
            for _ in range(3):
                assert call(conn, "/v1/metric", reader).status == 200
        token_cli(app, "revoke", "ro")
        for conn in conns:
            for _ in range(3):
                assert call(conn, "/v1/metric", reader).status == 401
    finally:
        for conn in conns:
            conn.close()
    # Operators keep an access log: one line per request, through supervisord's output.
    wait_for(lambda: app.log_path.read_text(errors="replace").count(
        '"GET /v1/metric HTTP/1.1" 401') >= 3 * len(conns), what="the access log lines")
