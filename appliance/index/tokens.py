"""API tokens as the index keeps them: a name, the SHA-256 of the secret, a role."""

from __future__ import annotations

import time

from appliance.index.database import Conflict, Database, NotFound


class Tokens:
    """The ``tokens`` table (the secrets themselves are never stored)."""

    def __init__(self, db: Database):
        self.db = db

    def add(self, name: str, token_hash: str, role: str) -> None:
        with self.db.transaction():
            table = self.db.table("tokens")
            if table.count_where("name = ?", [name]):
                raise Conflict(f"a token named {name!r} exists already")
            table.insert({"name": name, "hash": token_hash, "role": role,
                          "created_at": time.time()})

    def remove(self, name: str) -> None:
        with self.db.transaction() as conn:
            if not conn.execute("DELETE FROM tokens WHERE name = ?", (name,)).rowcount:
                raise NotFound(f"token {name!r}")
            self.db.invalidate_caches(conn)  # API workers remember the tokens they have seen

    def listing(self) -> list[dict]:
        return [{"name": r["name"], "role": r["role"], "created_at": r["created_at"]}
                for r in self.db.rows("tokens", order_by="name")]

    def exists(self, name: str) -> bool:
        return bool(self.db.query("SELECT 1 FROM tokens WHERE name = ?", (name,)))

    def by_hash(self, token_hash: str) -> tuple[str, str] | None:
        """``(name, role)`` of the token with this hash (one indexed SELECT), or None."""
        rows = self.db.query("SELECT name, role FROM tokens WHERE hash = ?", (token_hash,))
        return (rows[0]["name"], rows[0]["role"]) if rows else None
