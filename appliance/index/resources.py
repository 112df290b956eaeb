"""Resources, their types and their attribute history, with this process's write cache.

An attribute change closes the current revision into ``resource_history`` and makes the
new one current, so a resource's timeline is its few changes. Resources unchanged since
this process last wrote them cost a dict lookup (:meth:`Resources.ensure`).
"""

from __future__ import annotations

import copy
import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Any

from appliance.index.database import Conflict, Database, NotFound
from appliance.model import Resource

#: Resource types the pollsters create, with the attributes they always set.
BUILTIN_RESOURCE_TYPES: dict[str, list[str]] = {
    "generic": [],
    "host": ["host_name"],
    "host_disk": ["host_name", "device_name"],
    "host_network_interface": ["host_name", "device_name"],
    "host_filesystem": ["host_name", "mountpoint", "device_name", "fstype"],
    "instance": ["name", "uuid", "vcpus", "memory", "state", "os_type", "host"],
    "instance_disk": ["name", "instance_id"],
    "instance_network_interface": ["name", "instance_id"],
    "snmp_device": ["name", "host"],
    "snmp_interface": ["name", "device_id"],
    "snmp_storage": ["name", "device_id"],
    "snmp_disk": ["name", "device_id"],
    "snmp_processor": ["name", "device_id"],
    "sensor": ["chip", "label", "host", "source"],
}

#: Columns a client may sort or filter resources on, mapped to SQL expressions.
RESOURCE_COLUMNS = {
    "id": "id",
    "type": "type",
    "original_resource_id": "original_resource_id",
    "started_at": "started_at",
    "ended_at": "ended_at",
    "revision_start": "revision_start",
    "creator": "creator",
    "project_id": "project_id",
    "user_id": "user_id",
}


class Resources:
    """The ``resources``, ``resource_types`` and ``resource_history`` tables."""

    def __init__(self, db: Database):
        self.db = db
        # id -> (type, attributes as last written, their JSON, ended_at)
        self._cache: dict[str, tuple[str, dict[str, Any], str, float | None]] = {}
        db.on_new_epoch(self._cache.clear)

    def seed_types(self) -> None:
        """Within the caller's transaction: make the built-in resource types exist."""
        self.db.table("resource_types").insert_all(
            ({"name": name,
              "attributes": json.dumps({a: {"type": "string", "required": False}
                                        for a in attrs})}
             for name, attrs in BUILTIN_RESOURCE_TYPES.items()),
            ignore=True,
        )

    def ensure(self, resources: Iterable[Resource], now: float | None = None) -> int:
        """Create or update resources; an attribute change writes a history revision.

        Returns how many resources were written. This runs for every poll, so it keeps to
        plain statements on the connection.
        """
        now = time.time() if now is None else now
        self.db.revalidate()
        changed: list[tuple[Resource, str]] = []
        seen: set[str] = set()
        cache = self._cache
        for res in resources:
            if res.id in seen:
                continue
            seen.add(res.id)
            cached = cache.get(res.id)
            if cached is not None and cached[0] == res.type and cached[3] == res.ended_at:
                # Comparing dicts first: JSON-encoding every resource of every poll was a
                # tenth of a steady hypervisor poll's write.
                if cached[1] == res.attributes:
                    continue
                attrs = json.dumps(res.attributes, sort_keys=True, default=str)
                if cached[2] == attrs:  # equal once encoded (a tuple and a list)
                    cache[res.id] = (res.type, copy.deepcopy(res.attributes), attrs, res.ended_at)
                    continue
            else:
                attrs = json.dumps(res.attributes, sort_keys=True, default=str)
            changed.append((res, attrs))
        if not changed:
            return 0
        types_known = {r["name"] for r in self.db.query("SELECT name FROM resource_types")}
        with self.db.transaction() as conn:
            for res, attrs in changed:
                if res.type not in types_known:
                    conn.execute("INSERT INTO resource_types(name) VALUES (?)", (res.type,))
                    types_known.add(res.type)
                row = conn.execute(
                    "SELECT attributes, ended_at, revision_start FROM resources WHERE id = ?",
                    (res.id,),
                ).fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO resources(id, type, original_resource_id, attributes,"
                        " started_at, ended_at, revision_start) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (res.id, res.type, res.original_resource_id, attrs, now, res.ended_at, now),
                    )
                elif row["attributes"] != attrs or row["ended_at"] != res.ended_at:
                    self._revise(conn, res.id, row, attrs, res.ended_at, now)
                # A deep copy: a pollster may change a nested value in place later.
                cache[res.id] = (res.type, copy.deepcopy(res.attributes), attrs, res.ended_at)
        return len(changed)

    @staticmethod
    def _revise(
        conn: sqlite3.Connection,
        resource_id: str,
        old: sqlite3.Row,
        attrs: str,
        ended_at: float | None,
        now: float,
    ) -> None:
        """Close the current revision into history and make the new one current."""
        conn.execute(
            "INSERT INTO resource_history(resource_id, attributes, ended_at, revision_start,"
            " revision_end) VALUES (?, ?, ?, ?, ?)",
            (resource_id, old["attributes"], old["ended_at"], old["revision_start"], now),
        )
        conn.execute(
            "UPDATE resources SET attributes = ?, ended_at = ?, revision_start = ? WHERE id = ?",
            (attrs, ended_at, now, resource_id),
        )

    def update(self, resource_id: str, attributes: dict[str, Any], ended_at: float | None) -> None:
        """Replace a resource's attributes (API PATCH), keeping the old ones as history."""
        now = time.time()
        attrs = json.dumps(attributes, sort_keys=True, default=str)
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT attributes, ended_at, revision_start FROM resources WHERE id = ?",
                (resource_id,),
            ).fetchone()
            if row is None:
                raise NotFound(f"resource {resource_id}")
            if row["attributes"] != attrs or row["ended_at"] != ended_at:
                self._revise(conn, resource_id, row, attrs, ended_at, now)
                self.db.invalidate_caches(conn)

    def delete(self, resource_id: str) -> list[str]:
        """Delete a resource and its metrics' rows; returns the deleted metric ids."""
        with self.db.transaction() as conn:
            ids = [r[0] for r in conn.execute(
                "SELECT id FROM metrics WHERE resource_id = ?", (resource_id,)).fetchall()]
            if not conn.execute("DELETE FROM resources WHERE id = ?", (resource_id,)).rowcount:
                raise NotFound(f"resource {resource_id}")
            self.db.invalidate_caches(conn)
        return ids

    def create(
        self,
        res: Resource,
        started_at: float | None,
        creator: str,
        user_id: str | None = None,
        project_id: str | None = None,
    ) -> None:
        """Insert a pushed resource (API); an id in use is a Conflict."""
        now = time.time()
        try:
            with self.db.transaction():
                self.db.table("resources").insert({
                    "id": res.id, "type": res.type,
                    "original_resource_id": res.original_resource_id,
                    "attributes": json.dumps(res.attributes, sort_keys=True, default=str),
                    "started_at": now if started_at is None else started_at,
                    "ended_at": res.ended_at, "revision_start": now, "creator": creator,
                    "user_id": user_id, "project_id": project_id,
                })
        except sqlite3.IntegrityError:
            raise Conflict(f"resource {res.id} already exists") from None

    def get(self, resource_id: str, type_: str | None = None) -> sqlite3.Row:
        rows = self.db.query("SELECT * FROM resources WHERE id = ?", (resource_id,))
        if not rows or (type_ not in (None, "generic") and rows[0]["type"] != type_):
            raise NotFound(f"resource {resource_id}")
        return rows[0]

    def existing(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are resources in the index."""
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = list(ids[i : i + 500])
            found.update(r["id"] for r in self.db.query(
                f"SELECT id FROM resources WHERE id IN ({','.join('?' * len(chunk))})", chunk))
        return found

    def type_exists(self, name: str) -> bool:
        with self.db.lock:
            return bool(self.db.table("resource_types").count_where("name = ?", [name]))

    def types(self) -> list[dict[str, Any]]:
        return [
            {"name": r["name"], "attributes": json.loads(r["attributes"]), "state": r["state"]}
            for r in self.db.rows("resource_types", order_by="name")
        ]

    def count_by_type(self) -> list[tuple[str, int]]:
        """``(type, resources)`` pairs, the most numerous first."""
        rows = self.db.query(
            "SELECT type, count(*) AS n FROM resources GROUP BY type ORDER BY n DESC, type")
        return [(r["type"], r["n"]) for r in rows]

    def listing(
        self,
        type_: str | None = None,
        where: str = "",
        params: Sequence[Any] = (),
        sort: Sequence[tuple[str, bool]] = (("id", True),),
        limit: int | None = None,
        marker: str | None = None,
    ) -> list[sqlite3.Row]:
        """List resources of a type, sorted, paginated by ``marker`` (the last id seen).

        ``where`` is a SQL fragment built from validated input by :mod:`appliance.index.query`
        (column names come from a fixed list, values are bound parameters).
        """
        clauses, args = [], []
        if type_ and type_ != "generic":
            clauses.append("type = ?")
            args.append(type_)
        if where:
            clauses.append(f"({where})")
            args.extend(params)
        if marker is not None:
            row = self.db.query("SELECT * FROM resources WHERE id = ?", (marker,))
            if not row:
                raise NotFound(f"marker {marker}")
            keyset, keyargs = _keyset(sort, row[0])
            clauses.append(keyset)
            args.extend(keyargs)
        sql = "SELECT * FROM resources"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY " + ", ".join(f"{_col(c)} {'ASC' if asc else 'DESC'}" for c, asc in sort)
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self.db.query(sql, args)

    def history(self, resource_id: str) -> list[dict[str, Any]]:
        """Every revision of a resource, oldest first, the current one last."""
        current = self.get(resource_id)
        revisions = self.db.rows("resource_history", "resource_id = ?", [resource_id],
                                 order_by="revision_start")
        revisions.append({**dict(current), "revision_end": None})
        return revisions


def _col(name: str) -> str:
    """SQL for a sortable/filterable resource field: a column or a JSON attribute."""
    if name in RESOURCE_COLUMNS:
        return RESOURCE_COLUMNS[name]
    if not name.replace("_", "").replace(".", "").isalnum():
        raise ValueError(f"invalid attribute name {name!r}")
    return f"json_extract(attributes, '$.\"{name}\"')"


def _keyset(sort: Sequence[tuple[str, bool]], row: sqlite3.Row) -> tuple[str, list[Any]]:
    """A WHERE clause selecting rows strictly after ``row`` in ``sort`` order (ties by id)."""
    keys = list(sort)
    if keys[-1][0] != "id":
        keys.append(("id", True))
    attrs = json.loads(row["attributes"])
    values = [row[c] if c in RESOURCE_COLUMNS else attrs.get(c) for c, _ in keys]
    ors, args = [], []
    for i, (col, asc) in enumerate(keys):
        eqs = [f"{_col(c)} IS ?" for c, _ in keys[:i]]
        op = ">" if asc else "<"
        ors.append("(" + " AND ".join([*eqs, f"{_col(col)} {op} ?"]) + ")")
        args.extend(values[:i] + [values[i]])
    return "(" + " OR ".join(ors) + ")", args
