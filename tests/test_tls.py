"""HTTPS on the API port: ``api.tls: auto`` and given certificate files, with real clients.

curl and the gnocchi CLI trust the generated certificate as their CA (never ``--insecure``);
chromium trusts exactly its public key (``--ignore-certificate-errors-spki-list``, the one
way to hand chromium a trusted certificate without a system CA store), so a wrong or
changed certificate would still fail.
"""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from playwright import sync_api

from appliance import config, tls
from appliance.config import ConfigError
from tests.test_ui_browser import CHROMIUM, CHROMIUM_ARGS

GNOCCHI = str(Path(sys.executable).with_name("gnocchi"))


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args],
                          capture_output=True, text=True, timeout=30)


def openssl_fingerprint(cert: Path) -> str:
    out = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-fingerprint",
                          "-sha256"], capture_output=True, text=True, check=True).stdout
    return out.strip().split("=", 1)[1]


def test_auto_certificate_serves_https_to_curl_gnocchi_and_chromium(appliance_factory):
    app = appliance_factory({"api": {"tls": "auto"}})
    cert, key = app.data_dir / "tls/cert.pem", app.data_dir / "tls/key.pem"
    assert app.url.startswith("https://")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    san = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-ext",
                          "subjectAltName"], capture_output=True, text=True, check=True).stdout
    assert "IP Address:127.0.0.1" in san and f"DNS:{os.uname().nodename}" in san

    printed = subprocess.run(
        [sys.executable, "-m", "appliance", "tls-fingerprint", "--data-dir", str(app.data_dir)],
        capture_output=True, text=True, timeout=30,
    )
    assert printed.returncode == 0 and printed.stdout.strip() == openssl_fingerprint(cert)

    # curl: the certificate as CA; HSTS on every answer, the fast measures path included.
    auth = f"Authorization: Bearer {app.token}"
    ok = curl("--cacert", str(cert), "-D", "-", "-H", auth, f"{app.url}/v1/status")
    assert ok.returncode == 0 and " 200" in ok.stdout.splitlines()[0], ok.stderr
    assert "strict-transport-security: max-age=31536000" in ok.stdout.lower()
    refused = curl(f"{app.url}/v1/status")  # no CA given: the self-signed cert is refused
    assert refused.returncode == 60, refused
    assert curl(f"http://127.0.0.1:{app.port}/v1/status").returncode != 0  # TLS only

    # The gnocchi CLI with the certificate as its CA.
    gnocchi = subprocess.run(
        [GNOCCHI, "--endpoint", app.url, f"--user={app.token}", "--os-cacert", str(cert),
         "metric", "create", "-a", "low", "over-https", "-f", "value", "-c", "id"],
        capture_output=True, text=True, timeout=60,
    )
    assert gnocchi.returncode == 0, gnocchi.stderr
    mid = gnocchi.stdout.strip()
    fast = curl("--cacert", str(cert), "-D", "-", "-o", "/dev/null", "-H", auth,
                f"{app.url}/v1/metric/{mid}/measures")
    assert "strict-transport-security" in fast.stdout.lower()

    # Chromium trusts exactly this key; the session cookie is Secure.
    spki = base64.b64encode(tls.spki_sha256(cert)).decode()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={spki}"],
        )
        page = browser.new_page()
        page.goto(app.url + "/login")
        page.fill("#token", app.token)
        page.click("button[type=submit]")
        page.wait_for_url(app.url + "/")
        assert "rrdcached" in page.locator("#processes").inner_text()
        cookie = next(c for c in page.context.cookies() if c["name"] == "appliance_session")
        assert cookie["secure"] and cookie["httpOnly"]
        browser.close()


def test_given_certificate_files_and_their_errors(appliance_factory, tmp_path):
    cert, key = tmp_path / "site.crt", tmp_path / "site.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", "/CN=appliance.test", "-keyout", str(key),
         "-out", str(cert), "-addext", "subjectAltName=IP:127.0.0.1,DNS:appliance.test"],
        check=True, capture_output=True,
    )
    app = appliance_factory({"api": {"tls": {"cert_file": str(cert), "key_file": str(key)}}})
    ok = curl("--cacert", str(cert), "-H", f"Authorization: Bearer {app.token}",
              f"{app.url}/v1/status")
    assert ok.returncode == 0 and '"storage"' in ok.stdout, ok.stderr
    assert not (app.data_dir / "tls").exists()  # nothing generated
    printed = subprocess.run(
        [sys.executable, "-m", "appliance", "tls-fingerprint", "--config", str(app.config_path),
         "--data-dir", str(app.data_dir)], capture_output=True, text=True, timeout=30,
    )
    assert printed.stdout.strip() == openssl_fingerprint(cert)

    with pytest.raises(ConfigError, match=r"x\.yaml: api\.tls: cert_file: \S+ is not a "
                                          r"readable file$"):
        config.parse({"api": {"tls": {"cert_file": str(tmp_path / "nope.crt"),
                                      "key_file": str(key)}}}, "x.yaml")
    with pytest.raises(ConfigError, match=r"^x\.yaml: api\.tls: must be auto, null, or "):
        config.parse({"api": {"tls": "yes"}}, "x.yaml")


def test_auto_certificate_is_made_once(tmp_path):
    settings = config.parse({"data_dir": str(tmp_path), "api": {"tls": "auto"}}, "<test>")
    assert tls.ensure_auto_certificate(settings)
    first = (tmp_path / "tls/cert.pem").read_bytes()
    assert not tls.ensure_auto_certificate(settings)  # a restart keeps it
    assert (tmp_path / "tls/cert.pem").read_bytes() == first
    assert tls.gunicorn_args(settings) == ["--certfile", str(tmp_path / "tls/cert.pem"),
                                           "--keyfile", str(tmp_path / "tls/key.pem")]
    plain = config.parse({"data_dir": str(tmp_path)}, "<test>")
    assert tls.gunicorn_args(plain) == [] and not tls.ensure_auto_certificate(plain)
