"""The index's one SQLite database: the connection, write transactions and the cache epoch.

One connection per process (WAL mode, busy timeout), shared by the threads of that process
under a lock. The repositories of :mod:`appliance.index` all go through one
:class:`Database`; :mod:`sqlite_utils` wraps the same connection for their inserts, upserts,
updates and row queries (its writes nest as savepoints inside :meth:`Database.transaction`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from appliance.index.schema import migrate

#: SQLite's page cache per connection, in KiB.
CACHE_KIB = 512


class NotFound(LookupError):
    """The named thing is not in the index."""


class Conflict(ValueError):
    """The change would break the index's rules (a duplicate, a policy still in use)."""


class Database:
    """The SQLite file of one data dir, opened (and migrated) for one process."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        conn = sqlite3.connect(
            self.path, timeout=30, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA foreign_keys=ON")
        # SQLite's own page cache is private to each process (up to ten open this file),
        # while the file's pages sit in the kernel's page cache, shared, anyway; and a write
        # by another process invalidates it. SQLite's default (2 MB) held 1.5-1.7 MB more
        # in the SNMP agent than this (benchmarks/README.md, footprint.py).
        conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        self.conn = conn
        # No sqlite-utils plugins: loading them scans every installed package's entry points,
        # which cost each process 1.7 MB of its own and time at every open (none is used).
        self.db = sqlite_utils.Database(conn, execute_plugins=False)
        self.lock = threading.RLock()
        self.schema_version = migrate(self.db)
        self._epoch: int | None = None
        self._cache_clearers: list[Callable[[], None]] = []

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once so writers queue instead of deadlocking."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    def table(self, name: str) -> sqlite_utils.db.Table:
        """sqlite-utils' view of one table, over this connection."""
        return self.db.table(name)

    def rows(
        self,
        table: str,
        where: str | None = None,
        args: Sequence[Any] = (),
        order_by: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Rows of ``table`` as dicts (sqlite-utils' ``rows_where``), under the lock."""
        with self.lock:
            return list(self.table(table).rows_where(where, list(args), order_by=order_by,
                                                     limit=limit))

    def page(
        self,
        table: str,
        equal: dict[str, Any],
        limit: int | None = None,
        marker: str | None = None,
    ) -> list[sqlite3.Row]:
        """Rows of ``table`` whose columns equal ``equal``'s values, after ``marker`` by id.

        Table and column expressions come from the index's own code, never from a request;
        the values are bound parameters.
        """
        clauses = [f"{column} = ?" for column in equal]
        args = list(equal.values())
        if marker is not None:
            clauses.append("id > ?")
            args.append(marker)
        sql = f"SELECT * FROM {table}"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self.query(sql, args)

    # --- the cache epoch --------------------------------------------------------------------

    def epoch(self) -> int:
        """A counter that every update or deletion of a cacheable row moves (any process).

        Creating rows never makes a cache wrong as long as caches hold only what exists, but
        an API worker deleting a resource that an agent still polls, changing a policy or a
        rule, or revoking a token would: those changes bump ``cache_epoch`` in their own
        transaction (:meth:`invalidate_caches`), and a cache is trusted only while this
        value stays the same (one single-row SELECT per look).
        """
        (epoch,) = self.query("SELECT value FROM cache_epoch")[0]
        return epoch

    @staticmethod
    def invalidate_caches(conn: sqlite3.Connection) -> None:
        """Within a change's transaction: every process's caches are stale from its commit."""
        conn.execute("UPDATE cache_epoch SET value = value + 1")

    def on_new_epoch(self, clear: Callable[[], None]) -> None:
        """Have :meth:`revalidate` call ``clear`` (a repository's cache) on a new epoch."""
        self._cache_clearers.append(clear)

    def revalidate(self) -> None:
        """Drop every repository's cache of this process when the epoch has moved."""
        epoch = self.epoch()
        if epoch != self._epoch:
            for clear in self._cache_clearers:
                clear()
            self._epoch = epoch
