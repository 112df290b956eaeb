"""Metrics: a named series of one resource (or a free-standing pushed one), with this
process's cache of ``(resource id, name) -> Metric`` that keeps a steady poll off SQLite."""

from __future__ import annotations

import sqlite3
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from appliance.index.database import Conflict, Database, NotFound
from appliance.index.policies import Policies
from appliance.model import Kind, Metric


def _metric(row: sqlite3.Row | dict[str, Any]) -> Metric:
    # Names, units, policies and resource ids repeat across thousands of cached metrics (an
    # SNMP agent holds one per interface counter): one string each instead of one per row.
    return Metric(
        id=row["id"],
        name=_shared(row["name"]),
        unit=_shared(row["unit"]),
        kind=Kind(row["kind"]),
        resource_id=_shared(row["resource_id"]),
        archive_policy_name=sys.intern(row["archive_policy_name"]),
        created_at=row["created_at"],
        creator=sys.intern(row["creator"]),
    )


def _shared(text: str | None) -> str | None:
    return None if text is None else sys.intern(text)


def _in(ids: Sequence[str]) -> str:
    return f"({','.join('?' * len(ids))})"


class Metrics:
    """The ``metrics`` table; new metrics get their policy from :class:`Policies`' rules."""

    def __init__(self, db: Database, policies: Policies):
        self.db = db
        self.policies = policies
        self._cache: dict[tuple[str, str], Metric] = {}
        db.on_new_epoch(self._cache.clear)

    def ensure(self, wanted: Iterable[tuple[str, str, str, Kind]]) -> dict[tuple[str, str], Metric]:
        """Metrics for ``(resource_id, name, unit, kind)``, created on first sight."""
        self.db.revalidate()
        out: dict[tuple[str, str], Metric] = {}
        missing: dict[tuple[str, str], tuple[str, Kind]] = {}
        for rid, name, unit, kind in wanted:
            key = (rid, name)
            m = self._cache.get(key)
            if m is not None:
                out[key] = m
            else:
                missing[key] = (unit, kind)
        if not missing:
            return out
        now = time.time()
        with self.db.transaction() as conn:
            found = self._existing(conn, missing)
            for (rid, name), (unit, kind) in missing.items():
                m = found.get((rid, name))
                if m is None:
                    m = Metric(str(uuid.uuid4()), _shared(name), _shared(unit), kind,
                               _shared(rid), self.policies.rule_policy(name), now)
                    self._insert(conn, m)
                # The key from the cached metric's own (interned) strings, not the sample's.
                self._cache[(m.resource_id or rid, m.name or name)] = out[(rid, name)] = m
        return out

    @staticmethod
    def _existing(
        conn: sqlite3.Connection, wanted: dict[tuple[str, str], Any]
    ) -> dict[tuple[str, str], Metric]:
        """The metrics of ``wanted`` already in the table, read a few hundred resources at a
        time: an agent's first write after a start looks up thousands (one query each cost
        an SNMP agent's first cycle more than the poll)."""
        resource_ids = sorted({rid for rid, _ in wanted})
        found: dict[tuple[str, str], Metric] = {}
        for i in range(0, len(resource_ids), 500):
            chunk = resource_ids[i : i + 500]
            for row in conn.execute(f"SELECT * FROM metrics WHERE resource_id IN {_in(chunk)}",
                                    chunk):
                key = (row["resource_id"], row["name"])
                if key in wanted:
                    found[key] = _metric(row)
        return found

    @staticmethod
    def _insert(conn: sqlite3.Connection, m: Metric) -> None:
        conn.execute(
            "INSERT INTO metrics(id, name, unit, kind, resource_id, archive_policy_name,"
            " created_at, creator) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (m.id, m.name, m.unit, m.kind.value, m.resource_id, m.archive_policy_name,
             m.created_at, m.creator),
        )

    def create(
        self,
        name: str | None,
        unit: str | None,
        resource_id: str | None = None,
        archive_policy_name: str | None = None,
        kind: Kind = Kind.GAUGE,
        creator: str = "api",
    ) -> Metric:
        policy = archive_policy_name or (self.policies.policy_for(name) if name else None)
        if policy is None:
            raise Conflict("a metric without a name needs an archive_policy_name")
        self.policies.policy(policy)  # raises NotFound
        m = Metric(str(uuid.uuid4()), name, unit, kind, resource_id, policy, time.time(), creator)
        try:
            with self.db.transaction() as conn:
                self._insert(conn, m)
        except sqlite3.IntegrityError:
            raise Conflict(f"named metric {name!r} already exists on this resource") from None
        return m

    def get(self, metric_id: str) -> Metric:
        rows = self.db.query("SELECT * FROM metrics WHERE id = ?", (metric_id,))
        if not rows:
            raise NotFound(f"metric {metric_id}")
        return _metric(rows[0])

    def by_id(self, ids: Iterable[str]) -> dict[str, Metric]:
        ids = list(ids)
        out: dict[str, Metric] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            rows = self.db.query(f"SELECT * FROM metrics WHERE id IN {_in(chunk)}", chunk)
            out.update((r["id"], _metric(r)) for r in rows)
        return out

    def listing(
        self,
        resource_id: str | None = None,
        name: str | None = None,
        limit: int | None = None,
        marker: str | None = None,
    ) -> list[Metric]:
        filters = {"resource_id": resource_id, "name": name}
        rows = self.db.page("metrics", {k: v for k, v in filters.items() if v is not None},
                            limit, marker)
        return [_metric(r) for r in rows]

    def of_resources(self, resource_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """``{resource_id: {metric name: metric id}}``: Gnocchi's ``metrics`` field."""
        out: dict[str, dict[str, str]] = {rid: {} for rid in resource_ids}
        ids = list(resource_ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            for r in self.db.query(
                f"SELECT id, name, resource_id FROM metrics WHERE resource_id IN {_in(chunk)}",
                chunk,
            ):
                out[r["resource_id"]][r["name"]] = r["id"]
        return out

    def named_with_resources(self, like: Sequence[str] | None = None) -> list[sqlite3.Row]:
        """Every named metric with its resource's type and attributes, by name then id
        (what ``/metrics`` exposes); with ``like``, those whose name is LIKE one of them.

        The Prometheus query API selects series with ``like``: a Prometheus name
        (``disk_device_read_bytes``) does not map back to one meter name
        (``disk.device.read.bytes``, ``disk-device.read_bytes``, ...), but every character a
        meter name loses became ``_``, which LIKE reads as "any one character": LIKE narrows
        the scan and the caller keeps the rows whose exposed name really is the one asked.
        """
        sql = (
            "SELECT m.id, m.name, m.unit, m.kind, m.archive_policy_name, m.resource_id,"
            " m.created_at, m.creator, r.type, r.attributes"
            " FROM metrics m LEFT JOIN resources r ON r.id = m.resource_id"
            " WHERE m.name IS NOT NULL"
        )
        if like is None:
            return self.db.query(sql + " ORDER BY m.name, m.id")
        if not like:
            return []
        where = " OR ".join("m.name LIKE ?" for _ in like)
        return self.db.query(f"{sql} AND ({where}) ORDER BY m.name, m.id", list(like))

    def ids_on_matching_resources(
        self, name: str, resource_type: str, where: str, params: Sequence[Any]
    ) -> list[str]:
        """Ids of metrics ``name`` on resources of ``resource_type`` (any for ``generic``)
        matching ``where``, a fragment from :func:`appliance.index.query.compile_query`."""
        # A subquery, not a join: the filter's column names are the resources' own.
        rows = self.db.query(
            "SELECT id FROM metrics WHERE name = ? AND resource_id IN (SELECT id FROM resources"
            f" WHERE (? = 'generic' OR type = ?) AND ({where})) ORDER BY id",
            [name, resource_type, resource_type, *params],
        )
        return [row[0] for row in rows]

    def set_of_resource(
        self, resource_id: str, attach: dict[str, str], detach_others: bool
    ) -> None:
        """Gnocchi's ``metrics: {name: metric_id}`` of a resource create or PATCH.

        Each named metric is attached to the resource under that name; with
        ``detach_others`` (a PATCH that names ``metrics``) the resource's other metrics are
        detached, kept with their measures but no longer the resource's, as Gnocchi does.
        """
        try:
            with self.db.transaction() as conn:
                if detach_others:
                    keep = list(attach.values())
                    conn.execute(
                        "UPDATE metrics SET resource_id = NULL WHERE resource_id = ?"
                        f" AND id NOT IN {_in(keep)}",
                        [resource_id, *keep],
                    )
                for name, metric_id in attach.items():
                    if not conn.execute(
                        "UPDATE metrics SET resource_id = ?, name = ? WHERE id = ?",
                        (resource_id, name, metric_id),
                    ).rowcount:
                        raise NotFound(f"metric {metric_id}")
                self.db.invalidate_caches(conn)
        except sqlite3.IntegrityError:
            raise Conflict("a metric of that name is already on this resource") from None

    def delete(self, metric_id: str) -> None:
        with self.db.transaction() as conn:
            if not conn.execute("DELETE FROM metrics WHERE id = ?", (metric_id,)).rowcount:
                raise NotFound(f"metric {metric_id}")
            self.db.invalidate_caches(conn)
