"""The resource index: what exists (resources, their history, metrics, policies) in SQLite.

One connection per process (WAL mode, busy timeout), shared by the threads of that process
under a lock. Values over time live elsewhere (:mod:`appliance.storage`); the two are joined
by the metric id only.
"""

from __future__ import annotations

import copy
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from appliance.index import rebuilds
from appliance.index.schema import migrate
from appliance.model import Kind, Metric, Resource, TargetReport
from appliance.storage.policy import BUILTIN_POLICIES, ArchivePolicy, PolicyItem, match_rule

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


class NotFound(LookupError):
    """The named thing is not in the index."""


class Conflict(ValueError):
    """The change would break the index's rules (a duplicate, a policy still in use)."""


def _metric(row: sqlite3.Row | dict[str, Any]) -> Metric:
    return Metric(
        id=row["id"],
        name=row["name"],
        unit=row["unit"],
        kind=Kind(row["kind"]),
        resource_id=row["resource_id"],
        archive_policy_name=row["archive_policy_name"],
        created_at=row["created_at"],
        creator=row["creator"],
    )


def _policy(row: sqlite3.Row | dict[str, Any]) -> ArchivePolicy:
    return ArchivePolicy(
        row["name"],
        tuple(PolicyItem(g, p) for g, p in json.loads(row["definition"])),
        tuple(json.loads(row["aggregation_methods"])),
        row["back_window"],
    )


class Index:
    """The SQLite resource index of one data dir."""

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
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self._lock = threading.RLock()
        self.schema_version = migrate(conn)
        # Caches that keep a steady poll from touching SQLite at all: resource id -> the
        # attributes/ended_at last written, (resource id, metric name) -> Metric.
        # id -> (type, attributes as last written, their JSON, ended_at)
        self._resource_cache: dict[str, tuple[str, dict[str, Any], str, float | None]] = {}
        self._metric_cache: dict[tuple[str, str], Metric] = {}
        self._policy_cache: dict[str, ArchivePolicy] = {}
        self._rules_cache: list[tuple[str, str]] | None = None
        self._epoch: int | None = None

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once so writers queue instead of deadlocking."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self.conn.execute(sql, params).fetchall()

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

    def _revalidate(self) -> None:
        """Drop this index's caches (resources, metrics, policies, rules) on a new epoch."""
        epoch = self.epoch()
        if epoch != self._epoch:
            self._resource_cache.clear()
            self._metric_cache.clear()
            self._policy_cache.clear()
            self._rules_cache = None
            self._epoch = epoch

    # --- archive policies -------------------------------------------------------------------

    def seed(
        self,
        policies: dict[str, ArchivePolicy],
        rules: Iterable[tuple[str, str, str]],
    ) -> None:
        """Make the built-in and configured policies, rules and resource types exist.

        Config-defined policies are (re)written at every start (and their files queued for a
        rebuild when that changes them); built-in policies and rules are added only when
        missing, so changes made through the API survive a restart.
        """
        with self.transaction() as conn:
            for name, attrs in BUILTIN_RESOURCE_TYPES.items():
                conn.execute(
                    "INSERT OR IGNORE INTO resource_types(name, attributes) VALUES (?, ?)",
                    (name, json.dumps({a: {"type": "string", "required": False} for a in attrs})),
                )
            # Built-in policies are made once (a PATCH of one survives restarts); the
            # config's are its source of truth, their files rebuilt when it changes them.
            for name, policy in {**BUILTIN_POLICIES, **policies}.items():
                conn.execute(
                    "INSERT OR IGNORE INTO archive_policies(name, definition,"
                    " aggregation_methods, back_window, builtin) VALUES (?, ?, ?, ?, ?)",
                    (
                        name,
                        json.dumps([(i.granularity, i.points) for i in policy.definition]),
                        json.dumps(list(policy.aggregation_methods)),
                        policy.back_window,
                        int(name in BUILTIN_POLICIES),
                    ),
                )
            for policy in policies.values():
                rebuilds.apply_configured(conn, policy)
            for name, pattern, policy_name in rules:
                conn.execute(
                    "INSERT OR IGNORE INTO archive_policy_rules VALUES (?, ?, ?)",
                    (name, pattern, policy_name),
                )
        self._policy_cache.clear()
        self._rules_cache = None

    def policy(self, name: str) -> ArchivePolicy:
        return self.policies_for([name])[name]

    def policies_for(self, names: Iterable[str]) -> dict[str, ArchivePolicy]:
        """The named policies, with one look at the cache epoch for all of them (a read
        across 1000 metrics asks once, not once per metric)."""
        self._revalidate()
        out = {}
        for name in names:
            cached = self._policy_cache.get(name)
            if cached is None:
                rows = self.query("SELECT * FROM archive_policies WHERE name = ?", (name,))
                if not rows:
                    raise NotFound(f"archive policy {name!r}")
                cached = self._policy_cache[name] = _policy(rows[0])
            out[name] = cached
        return out

    def policies(self) -> list[ArchivePolicy]:
        return [_policy(r) for r in self.query("SELECT * FROM archive_policies ORDER BY name")]

    def rules(self) -> list[dict[str, str]]:
        return [
            dict(r)
            for r in self.query("SELECT * FROM archive_policy_rules ORDER BY metric_pattern")
        ]

    def policy_for(self, metric_name: str) -> str:
        """The archive policy a new metric of this name gets (longest matching rule)."""
        self._revalidate()
        return self._rule_policy(metric_name)

    def _rule_policy(self, metric_name: str) -> str:
        """:meth:`policy_for` for a caller that has just revalidated the caches."""
        if self._rules_cache is None:
            self._rules_cache = [
                (r["metric_pattern"], r["archive_policy_name"]) for r in self.rules()
            ]
        name = match_rule(metric_name, self._rules_cache)
        if name is None:
            raise NotFound(f"no archive policy rule matches metric name {metric_name!r}")
        return name

    # --- resources --------------------------------------------------------------------------

    def ensure_resources(self, resources: Iterable[Resource], now: float | None = None) -> int:
        """Create or update resources; an attribute change writes a history revision.

        Returns how many resources were written. Resources unchanged since this process
        last wrote them cost a dict lookup.
        """
        now = time.time() if now is None else now
        self._revalidate()
        changed: list[tuple[Resource, str]] = []
        seen: set[str] = set()
        cache = self._resource_cache
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
        types_known = {r["name"] for r in self.query("SELECT name FROM resource_types")}
        with self.transaction() as conn:
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

    def update_resource(
        self, resource_id: str, attributes: dict[str, Any], ended_at: float | None
    ) -> None:
        """Replace a resource's attributes (API PATCH), keeping the old ones as history."""
        now = time.time()
        attrs = json.dumps(attributes, sort_keys=True, default=str)
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT attributes, ended_at, revision_start FROM resources WHERE id = ?",
                (resource_id,),
            ).fetchone()
            if row is None:
                raise NotFound(f"resource {resource_id}")
            if row["attributes"] != attrs or row["ended_at"] != ended_at:
                self._revise(conn, resource_id, row, attrs, ended_at, now)
                self.invalidate_caches(conn)

    def delete_resource(self, resource_id: str) -> list[str]:
        """Delete a resource and its metrics; returns the deleted metric ids."""
        with self.transaction() as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM metrics WHERE resource_id = ?", (resource_id,)
                ).fetchall()
            ]
            if not conn.execute("DELETE FROM resources WHERE id = ?", (resource_id,)).rowcount:
                raise NotFound(f"resource {resource_id}")
            self.invalidate_caches(conn)
        return ids

    def resource(self, resource_id: str, type_: str | None = None) -> sqlite3.Row:
        rows = self.query("SELECT * FROM resources WHERE id = ?", (resource_id,))
        if not rows or (type_ not in (None, "generic") and rows[0]["type"] != type_):
            raise NotFound(f"resource {resource_id}")
        return rows[0]

    def resources(
        self,
        type_: str | None = None,
        where: str = "",
        params: Sequence[Any] = (),
        sort: Sequence[tuple[str, bool]] = (("id", True),),
        limit: int | None = None,
        marker: str | None = None,
    ) -> list[sqlite3.Row]:
        """List resources of a type, sorted, paginated by ``marker`` (the last id seen).

        ``where`` is a SQL fragment built by the caller from validated input only (column
        names come from a fixed list, values are bound parameters).
        """
        clauses, args = [], []
        if type_ and type_ != "generic":
            clauses.append("type = ?")
            args.append(type_)
        if where:
            clauses.append(f"({where})")
            args.extend(params)
        if marker is not None:
            row = self.query("SELECT * FROM resources WHERE id = ?", (marker,))
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
        return self.query(sql, args)

    def history(self, resource_id: str) -> list[dict[str, Any]]:
        """Every revision of a resource, oldest first, the current one last."""
        current = self.resource(resource_id)
        rows = self.query(
            "SELECT * FROM resource_history WHERE resource_id = ? ORDER BY revision_start",
            (resource_id,),
        )
        revisions = [dict(r) for r in rows]
        revisions.append({**dict(current), "revision_end": None})
        return revisions

    # --- metrics ----------------------------------------------------------------------------

    def ensure_metrics(
        self, wanted: Iterable[tuple[str, str, str, Kind]]
    ) -> dict[tuple[str, str], Metric]:
        """Metrics for ``(resource_id, name, unit, kind)``, created on first sight."""
        self._revalidate()
        out: dict[tuple[str, str], Metric] = {}
        missing: dict[tuple[str, str], tuple[str, Kind]] = {}
        for rid, name, unit, kind in wanted:
            key = (rid, name)
            m = self._metric_cache.get(key)
            if m is not None:
                out[key] = m
            else:
                missing[key] = (unit, kind)
        if not missing:
            return out
        now = time.time()
        with self.transaction() as conn:
            for (rid, name), (unit, kind) in missing.items():
                row = conn.execute(
                    "SELECT * FROM metrics WHERE resource_id = ? AND name = ?", (rid, name)
                ).fetchone()
                if row is None:
                    m = Metric(str(uuid.uuid4()), name, unit, kind, rid, self._rule_policy(name),
                               now)
                    self._insert_metric(conn, m)
                else:
                    m = _metric(row)
                self._metric_cache[(rid, name)] = out[(rid, name)] = m
        return out

    @staticmethod
    def _insert_metric(conn: sqlite3.Connection, m: Metric) -> None:
        conn.execute(
            "INSERT INTO metrics(id, name, unit, kind, resource_id, archive_policy_name,"
            " created_at, creator) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (m.id, m.name, m.unit, m.kind.value, m.resource_id, m.archive_policy_name,
             m.created_at, m.creator),
        )

    def create_metric(
        self,
        name: str | None,
        unit: str | None,
        resource_id: str | None = None,
        archive_policy_name: str | None = None,
        kind: Kind = Kind.GAUGE,
        creator: str = "api",
    ) -> Metric:
        policy = archive_policy_name or (self.policy_for(name) if name else None)
        if policy is None:
            raise Conflict("a metric without a name needs an archive_policy_name")
        self.policy(policy)  # raises NotFound
        m = Metric(str(uuid.uuid4()), name, unit, kind, resource_id, policy, time.time(), creator)
        try:
            with self.transaction() as conn:
                self._insert_metric(conn, m)
        except sqlite3.IntegrityError:
            raise Conflict(f"named metric {name!r} already exists on this resource") from None
        return m

    def metric(self, metric_id: str) -> Metric:
        rows = self.query("SELECT * FROM metrics WHERE id = ?", (metric_id,))
        if not rows:
            raise NotFound(f"metric {metric_id}")
        return _metric(rows[0])

    def metrics_by_id(self, ids: Iterable[str]) -> dict[str, Metric]:
        ids = list(ids)
        out: dict[str, Metric] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            rows = self.query(
                f"SELECT * FROM metrics WHERE id IN ({','.join('?' * len(chunk))})", chunk
            )
            out.update((r["id"], _metric(r)) for r in rows)
        return out

    def metrics(
        self,
        resource_id: str | None = None,
        name: str | None = None,
        limit: int | None = None,
        marker: str | None = None,
    ) -> list[Metric]:
        filters = {"resource_id": resource_id, "name": name}
        rows = self.page("metrics", {k: v for k, v in filters.items() if v is not None},
                         limit, marker)
        return [_metric(r) for r in rows]

    def page(
        self,
        table: str,
        equal: dict[str, Any],
        limit: int | None = None,
        marker: str | None = None,
    ) -> list[sqlite3.Row]:
        """Rows of ``table`` whose columns equal ``equal``'s values, after ``marker`` by id.

        Table and column expressions come from the caller's code, never from a request; the
        values are bound parameters.
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

    def resource_metrics(self, resource_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """``{resource_id: {metric name: metric id}}``: Gnocchi's ``metrics`` field."""
        out: dict[str, dict[str, str]] = {rid: {} for rid in resource_ids}
        ids = list(resource_ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            for r in self.query(
                "SELECT id, name, resource_id FROM metrics"
                f" WHERE resource_id IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                out[r["resource_id"]][r["name"]] = r["id"]
        return out

    def set_resource_metrics(
        self, resource_id: str, attach: dict[str, str], detach_others: bool
    ) -> None:
        """Gnocchi's ``metrics: {name: metric_id}`` of a resource create or PATCH.

        Each named metric is attached to the resource under that name; with
        ``detach_others`` (a PATCH that names ``metrics``) the resource's other metrics are
        detached, kept with their measures but no longer the resource's, as Gnocchi does.
        """
        try:
            with self.transaction() as conn:
                if detach_others:
                    keep = list(attach.values())
                    conn.execute(
                        "UPDATE metrics SET resource_id = NULL WHERE resource_id = ?"
                        f" AND id NOT IN ({','.join('?' * len(keep))})",
                        [resource_id, *keep],
                    )
                for name, metric_id in attach.items():
                    if not conn.execute(
                        "UPDATE metrics SET resource_id = ?, name = ? WHERE id = ?",
                        (resource_id, name, metric_id),
                    ).rowcount:
                        raise NotFound(f"metric {metric_id}")
                self.invalidate_caches(conn)
        except sqlite3.IntegrityError:
            raise Conflict("a metric of that name is already on this resource") from None

    def delete_metric(self, metric_id: str) -> None:
        with self.transaction() as conn:
            if not conn.execute("DELETE FROM metrics WHERE id = ?", (metric_id,)).rowcount:
                raise NotFound(f"metric {metric_id}")
            self.invalidate_caches(conn)

    # --- administration through the API -------------------------------------------------

    def create_policy(self, policy: ArchivePolicy) -> None:
        """Add a custom archive policy (API); a name in use is a Conflict."""
        try:
            with self.transaction() as conn:
                conn.execute(
                    "INSERT INTO archive_policies(name, definition, aggregation_methods,"
                    " back_window, builtin) VALUES (?, ?, ?, ?, 0)",
                    (
                        policy.name,
                        json.dumps([(i.granularity, i.points) for i in policy.definition]),
                        json.dumps(list(policy.aggregation_methods)),
                        policy.back_window,
                    ),
                )
        except sqlite3.IntegrityError:
            raise Conflict(f"archive policy {policy.name!r} already exists") from None

    def policy_users(self, name: str) -> int:
        """How many metrics and rules use a policy (a used policy cannot change or go)."""
        return self.query(
            "SELECT (SELECT count(*) FROM metrics WHERE archive_policy_name = ?)"
            " + (SELECT count(*) FROM archive_policy_rules WHERE archive_policy_name = ?)",
            (name, name),
        )[0][0]

    def replace_policy(self, policy: ArchivePolicy) -> None:
        """Change an unused policy's definition (RRD files cannot change their RRAs)."""
        self.policy(policy.name)
        if self.policy_users(policy.name):
            raise Conflict(f"archive policy {policy.name!r} is in use")
        with self.transaction() as conn:
            conn.execute(
                "UPDATE archive_policies SET definition = ? WHERE name = ?",
                (json.dumps([(i.granularity, i.points) for i in policy.definition]), policy.name),
            )
            self.invalidate_caches(conn)

    def delete_policy(self, name: str) -> None:
        self.policy(name)
        if self.policy_users(name):
            raise Conflict(f"archive policy {name!r} is in use")
        with self.transaction() as conn:
            conn.execute("DELETE FROM archive_policies WHERE name = ?", (name,))
            self.invalidate_caches(conn)

    def rule(self, name: str) -> dict[str, str]:
        rows = self.query("SELECT * FROM archive_policy_rules WHERE name = ?", (name,))
        if not rows:
            raise NotFound(f"archive policy rule {name!r}")
        return dict(rows[0])

    def create_rule(self, name: str, pattern: str, policy_name: str) -> None:
        self.policy(policy_name)
        try:
            with self.transaction() as conn:
                conn.execute(
                    "INSERT INTO archive_policy_rules VALUES (?, ?, ?)",
                    (name, pattern, policy_name),
                )
                self.invalidate_caches(conn)  # it may win over a rule other processes matched
        except sqlite3.IntegrityError:
            raise Conflict(f"archive policy rule {name!r} already exists") from None

    def delete_rule(self, name: str) -> None:
        with self.transaction() as conn:
            deleted = conn.execute("DELETE FROM archive_policy_rules WHERE name = ?", (name,))
            if not deleted.rowcount:
                raise NotFound(f"archive policy rule {name!r}")
            self.invalidate_caches(conn)

    def rename_rule(self, name: str, new_name: str) -> None:
        """Gnocchi's only change to a rule: its name (what it matches stays)."""
        try:
            with self.transaction() as conn:
                renamed = conn.execute(
                    "UPDATE archive_policy_rules SET name = ? WHERE name = ?", (new_name, name)
                )
                if not renamed.rowcount:
                    raise NotFound(f"archive policy rule {name!r}")
        except sqlite3.IntegrityError:
            raise Conflict(f"archive policy rule {new_name!r} already exists") from None

    def resource_types(self) -> list[dict[str, Any]]:
        return [
            {"name": r["name"], "attributes": json.loads(r["attributes"]), "state": r["state"]}
            for r in self.query("SELECT * FROM resource_types ORDER BY name")
        ]

    def create_resource(
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
            with self.transaction() as conn:
                conn.execute(
                    "INSERT INTO resources(id, type, original_resource_id, attributes, started_at,"
                    " ended_at, revision_start, creator, user_id, project_id)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        res.id, res.type, res.original_resource_id,
                        json.dumps(res.attributes, sort_keys=True, default=str),
                        now if started_at is None else started_at, res.ended_at, now, creator,
                        user_id, project_id,
                    ),
                )
        except sqlite3.IntegrityError:
            raise Conflict(f"resource {res.id} already exists") from None

    # --- health and counters ----------------------------------------------------------------

    def record_reports(self, reports: Iterable[TargetReport]) -> None:
        """Keep the latest outcome of each (source, target) poll for the API and status page."""
        rows = [
            (
                r.source, r.target, r.started_at, r.started_at if r.ok else None, r.duration,
                r.samples, r.error, int(not r.ok), json.dumps(r.detail, default=str),
            )
            for r in reports
        ]
        if not rows:
            return
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO source_status(source, target, last_attempt, last_success, duration,"
                " samples, last_error, polls, errors, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)"
                " ON CONFLICT(source, target) DO UPDATE SET"
                " last_attempt = excluded.last_attempt,"
                " last_success = COALESCE(excluded.last_success, last_success),"
                " duration = excluded.duration, samples = excluded.samples,"
                " last_error = excluded.last_error, polls = polls + 1,"
                " errors = errors + excluded.errors, detail = excluded.detail",
                rows,
            )

    def source_status(self) -> list[dict[str, Any]]:
        return [
            {**dict(r), "detail": json.loads(r["detail"])}
            for r in self.query("SELECT * FROM source_status ORDER BY source, target")
        ]

    def add_counters(self, counts: dict[str, int]) -> None:
        counts = {k: v for k, v in counts.items() if v}
        if not counts:
            return
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO counters(name, value) VALUES (?, ?)"
                " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                list(counts.items()),
            )

    def counters(self) -> dict[str, int]:
        return {r["name"]: r["value"] for r in self.query("SELECT * FROM counters")}

    def counts(self) -> dict[str, int]:
        return {
            "resources": self.query("SELECT count(*) FROM resources")[0][0],
            "metrics": self.query("SELECT count(*) FROM metrics")[0][0],
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
