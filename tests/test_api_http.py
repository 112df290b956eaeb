"""The API as clients reach it: gunicorn under ``appliance run``, over real TCP connections.

Workers keep connections alive (gthread, one request thread each), so a session-keeping
client such as gnocchiclient's reuses one socket; what a worker remembers about tokens must
still give way to a revoke at its next request.
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


def test_a_connection_is_kept_alive_across_requests(appliance_factory):
    app = appliance_factory({"pollsters": OFF})
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
    try:
        first = call(conn, "/v1/metric", app.token)
        sock = conn.sock
        second = call(conn, "/v1/metric", app.token)
        assert first.status == second.status == 200
        assert not second.will_close and conn.sock is sock  # no new connection was made
    finally:
        conn.close()
    # Operators keep an access log: one line per request, through supervisord's output.
    wait_for(lambda: app.log_path.read_text(errors="replace").count(
        '"GET /v1/metric HTTP/1.1" 200') >= 2, what="the access log lines")


def test_every_worker_refuses_a_revoked_token_at_its_next_request(appliance_factory):
    app = appliance_factory({"pollsters": OFF})
    reader = token_cli(app, "create", "ro", "--role", "reader").split()[-1]
    conns = [http.client.HTTPConnection("127.0.0.1", app.port, timeout=10) for _ in range(4)]
    try:
        for conn in conns:  # connections spread over the workers, which remember the token
            for _ in range(3):
                assert call(conn, "/v1/metric", reader).status == 200
        token_cli(app, "revoke", "ro")
        for conn in conns:
            for _ in range(3):
                assert call(conn, "/v1/metric", reader).status == 401
    finally:
        for conn in conns:
            conn.close()
