"""API tokens: only their SHA-256 is kept in the index; the config may name more.

On first start with no token configured, one admin token is generated into
``<data_dir>/admin-token`` (mode 0600) so that the operator can read it once with
``appliance token``; the index holds only its hash.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from appliance.config import Settings
from appliance.index import Index

ADMIN_TOKEN_FILE = "admin-token"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def admin_token_path(settings: Settings) -> Path:
    return settings.data_dir / ADMIN_TOKEN_FILE


def create(index: Index, name: str, role: str) -> str:
    """A new random token; returns it (the only time it is ever shown)."""
    token = secrets.token_urlsafe(32)
    index.token_repo.add(name, hash_token(token), role)  # a name in use is a Conflict
    return token


def revoke(index: Index, name: str) -> None:
    """Remove a token (NotFound if there is none of that name); API workers forget it."""
    index.token_repo.remove(name)


def listing(index: Index) -> list[dict]:
    return index.token_repo.listing()


def ensure_admin_token(settings: Settings, index: Index) -> str | None:
    """Generate the first admin token when the config names none; return it if generated."""
    path = admin_token_path(settings)
    if settings.api.tokens or path.exists():
        return None
    token = create(index, "admin", "admin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    role: str

    @property
    def can_write(self) -> bool:
        return self.role == "admin"


class Verifier:
    """Checks presented tokens against the config's tokens and the index.

    Index tokens are looked up by their hash (one indexed SELECT), so a token created or
    revoked by ``appliance token`` is seen at once in every API worker; the API keeps the
    identities it found only until a revocation (:class:`appliance.index.memo.IndexMemo`). Only
    hashes are compared: the secret itself never meets a comparison that could leak its
    prefix through timing.
    """

    def __init__(self, settings: Settings, index: Index):
        self._static = {
            hash_token(t.token.get_secret_value()): Identity(t.name, t.role)
            for t in settings.api.tokens
        }
        self._index = index

    def verify(self, token: str) -> Identity | None:
        return self.lookup(hash_token(token))

    def lookup(self, presented: str) -> Identity | None:
        """The identity of a token given by its :func:`hash_token`, or None."""
        found = None
        for known, identity in self._static.items():
            # Compare every candidate, in constant time each, whether or not one matched.
            if hmac.compare_digest(presented, known):
                found = identity
        if found is None:
            row = self._index.token_repo.by_hash(presented)
            if row is not None:
                found = Identity(*row)
        return found
