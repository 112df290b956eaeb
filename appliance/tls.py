"""HTTPS on the API port: a given certificate, or one generated for this host (``auto``).

Tokens travel in every API request and the status page keeps a session cookie, so an
appliance that listens beyond loopback should speak TLS. ``api.tls: auto`` makes that a
one-word setting: at the first start a self-signed certificate for the host's names and
addresses is written into the data dir (key mode 0600) and kept; clients trust it by its
SHA-256 fingerprint (``appliance tls-fingerprint``) or by using the certificate as their CA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from pathlib import Path

from appliance.config import Settings

# cryptography (~10 MB of imports) and psutil are loaded only by the functions that make or
# read a certificate: the API workers import this module for HSTS alone and stay small.

#: A generated certificate's life; delete both files and restart to make a new one.
VALIDITY = dt.timedelta(days=3650)
#: Sent under TLS: browsers then refuse plain HTTP to this host for a year.
HSTS = "max-age=31536000"


def files(settings: Settings) -> tuple[Path, Path] | None:
    """``(cert, key)`` the API serves, or None for plain HTTP."""
    tls = settings.api.tls
    if tls is None:
        return None
    if tls == "auto":
        return auto_dir(settings) / "cert.pem", auto_dir(settings) / "key.pem"
    return tls.cert_file, tls.key_file


def auto_dir(settings: Settings) -> Path:
    return settings.data_dir / "tls"


def gunicorn_args(settings: Settings) -> list[str]:
    """gunicorn's options for this config (none for plain HTTP)."""
    pair = files(settings)
    return [] if pair is None else ["--certfile", str(pair[0]), "--keyfile", str(pair[1])]


def scheme(settings: Settings) -> str:
    return "http" if settings.api.tls is None else "https"


def host_identities(listen_host: str) -> tuple[list[str], list[str]]:
    """The DNS names and IP addresses a client may use to reach this host."""
    import psutil

    names = {"localhost", socket.gethostname(), socket.getfqdn()}
    addresses = {"127.0.0.1", "::1"}
    for entries in psutil.net_if_addrs().values():
        for entry in entries:
            if entry.family in (socket.AF_INET, socket.AF_INET6) and "%" not in entry.address:
                addresses.add(entry.address)
    try:
        ip = ipaddress.ip_address(listen_host)
        if not ip.is_unspecified:
            addresses.add(str(ip))
    except ValueError:
        if listen_host:
            names.add(listen_host)
    return sorted(n for n in names if n), sorted(addresses)


def ensure_auto_certificate(settings: Settings) -> bool:
    """With ``api.tls: auto``, make the certificate if there is none; True if it was made."""
    if settings.api.tls != "auto":
        return False
    cert_path, key_path = files(settings)  # type: ignore[misc]
    if cert_path.is_file() and key_path.is_file():
        return False
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    names, addresses = host_identities(settings.api.host)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "appliance"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "telemetry appliance"),
    ])
    now = dt.datetime.now(dt.UTC)
    alt = [x509.DNSName(n) for n in names] + [
        x509.IPAddress(ipaddress.ip_address(a)) for a in addresses
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write(key_path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return True


def _write(path: Path, data: bytes, mode: int) -> None:
    """Whole or not at all: a crash never leaves a half-written key or certificate."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    tmp.replace(path)


def fingerprint(cert_path: Path) -> str:
    """The certificate's SHA-256 fingerprint as browsers show it (``AB:CD:...``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def spki_sha256(cert_path: Path) -> bytes:
    """SHA-256 of the certificate's public key (what chromium's SPKI allow-list names)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return digest.finalize()


class Hsts:
    """WSGI wrapper adding HSTS to every response, the fast path's included."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        def start(status, headers, exc_info=None):
            headers.append(("Strict-Transport-Security", HSTS))
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


def secure(app, settings: Settings) -> None:
    """Under TLS: the session cookie is ``Secure`` and every response carries HSTS."""
    if settings.api.tls is None:
        return
    app.config["SESSION_COOKIE_SECURE"] = True
    app.wsgi_app = Hsts(app.wsgi_app)
