"""Archive policies and the rules that pick one for a new metric, with this process's cache.

A policy's definition is stored as JSON (``[[granularity, points], ...]``). Built-in
policies and rules are only added when missing (:meth:`Policies.seed`), so changes made
through the API survive a restart; config-defined policies are the config's at every start.
Changing a policy in use queues each of its metrics in ``policy_rebuilds`` in the same
transaction (:mod:`.rebuilds` reads that queue), so a crash leaves either the old policy with
nothing queued or the new one with every metric queued.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from appliance.index.database import Conflict, Database, NotFound
from appliance.model import BUILTIN_POLICIES, ArchivePolicy, PolicyItem, match_rule

log = logging.getLogger(__name__)


def _policy(row: sqlite3.Row | dict[str, Any]) -> ArchivePolicy:
    return ArchivePolicy(
        row["name"],
        tuple(PolicyItem(g, p) for g, p in json.loads(row["definition"])),
        tuple(json.loads(row["aggregation_methods"])),
        row["back_window"],
    )


def _row(policy: ArchivePolicy, builtin: bool = False) -> dict[str, Any]:
    return {
        "name": policy.name,
        "definition": json.dumps([(i.granularity, i.points) for i in policy.definition]),
        "aggregation_methods": json.dumps(list(policy.aggregation_methods)),
        "back_window": policy.back_window,
        "builtin": int(builtin),
    }


class Policies:
    """The ``archive_policies`` and ``archive_policy_rules`` tables."""

    def __init__(self, db: Database):
        self.db = db
        self._cache: dict[str, ArchivePolicy] = {}
        self._rules: list[tuple[str, str]] | None = None
        db.on_new_epoch(self.clear_cache)

    def clear_cache(self) -> None:
        self._cache.clear()
        self._rules = None

    def seed(self, policies: dict[str, ArchivePolicy],
             rules: Iterable[tuple[str, str, str]]) -> None:
        """Within the caller's transaction: add missing built-in policies and rules, and
        make the configured policies the config's (their files queued for a rebuild when
        that changes them)."""
        self.db.table("archive_policies").insert_all(
            (_row(p, name in BUILTIN_POLICIES)
             for name, p in {**BUILTIN_POLICIES, **policies}.items()),
            pk="name", ignore=True,
        )
        for policy in policies.values():
            self._apply_configured(policy)
        self.db.table("archive_policy_rules").insert_all(
            ({"name": n, "metric_pattern": p, "archive_policy_name": a} for n, p, a in rules),
            ignore=True,
        )
        self.clear_cache()

    def _apply_configured(self, policy: ArchivePolicy) -> None:
        """The config's version of a policy, its files queued if it changed. A changed
        finest granularity (the files' step) is not applied while metrics use the policy:
        it is logged and the stored one kept."""
        stored = _policy(self.db.table("archive_policies").get(policy.name))
        if (stored.definition, stored.aggregation_methods, stored.back_window) == (
                policy.definition, policy.aggregation_methods, policy.back_window):
            return
        used = self.db.table("metrics").count_where("archive_policy_name = ?", [policy.name])
        if used and stored.step != policy.step:
            log.error("archive policy %r: the config changes its finest granularity, the step "
                      "of the files of its %d metrics; kept as it was", policy.name, used)
            return
        self._store(policy)
        if used:
            log.info("archive policy %r changed by the config: %d metric files queued for a "
                     "rebuild", policy.name, self._queue(policy.name))
        self.db.invalidate_caches(self.db.conn)

    def policy(self, name: str) -> ArchivePolicy:
        return self.policies_for([name])[name]

    def policies_for(self, names: Iterable[str]) -> dict[str, ArchivePolicy]:
        """The named policies, with one look at the cache epoch for all of them (a read
        across 1000 metrics asks once, not once per metric)."""
        self.db.revalidate()
        out = {}
        for name in names:
            cached = self._cache.get(name)
            if cached is None:
                rows = self.db.query("SELECT * FROM archive_policies WHERE name = ?", (name,))
                if not rows:
                    raise NotFound(f"archive policy {name!r}")
                cached = self._cache[name] = _policy(rows[0])
            out[name] = cached
        return out

    def policies(self) -> list[ArchivePolicy]:
        return [_policy(r) for r in self.db.rows("archive_policies", order_by="name")]

    def rules(self) -> list[dict[str, str]]:
        return self.db.rows("archive_policy_rules", order_by="metric_pattern")

    def policy_for(self, metric_name: str) -> str:
        """The archive policy a new metric of this name gets (longest matching rule)."""
        self.db.revalidate()
        return self.rule_policy(metric_name)

    def rule_policy(self, metric_name: str) -> str:
        """:meth:`policy_for` for a caller that has just revalidated the caches."""
        if self._rules is None:
            self._rules = [(r["metric_pattern"], r["archive_policy_name"]) for r in self.rules()]
        name = match_rule(metric_name, self._rules)
        if name is None:
            raise NotFound(f"no archive policy rule matches metric name {metric_name!r}")
        return name

    # --- administration through the API -----------------------------------------------------

    def create_policy(self, policy: ArchivePolicy) -> None:
        """Add a custom archive policy (API); a name in use is a Conflict."""
        try:
            with self.db.transaction():
                self.db.table("archive_policies").insert(_row(policy))
        except sqlite3.IntegrityError:
            raise Conflict(f"archive policy {policy.name!r} already exists") from None

    def policy_users(self, name: str) -> int:
        """How many metrics and rules use a policy (a used policy cannot be deleted)."""
        where = ("archive_policy_name = ?", [name])
        with self.db.lock:
            return (self.db.table("metrics").count_where(*where)
                    + self.db.table("archive_policy_rules").count_where(*where))

    def change_policy(self, policy: ArchivePolicy) -> int:
        """Give an existing policy a new definition, methods and back window, in use or not;
        return how many metrics (its users) now wait for a rebuild of their file."""
        with self.db.transaction() as conn:
            if not self._store(policy):
                raise NotFound(f"archive policy {policy.name!r}")
            queued = self._queue(policy.name)
            self.db.invalidate_caches(conn)
        return queued

    def _store(self, policy: ArchivePolicy) -> bool:
        row = _row(policy)
        return bool(self.db.conn.execute(
            "UPDATE archive_policies SET definition = ?, aggregation_methods = ?,"
            " back_window = ? WHERE name = ?",
            (row["definition"], row["aggregation_methods"], row["back_window"], policy.name),
        ).rowcount)

    def _queue(self, policy_name: str) -> int:
        return self.db.conn.execute(
            "INSERT OR REPLACE INTO policy_rebuilds(metric_id, policy_name, queued_at)"
            " SELECT id, archive_policy_name, ? FROM metrics WHERE archive_policy_name = ?",
            (time.time(), policy_name),
        ).rowcount

    def delete_policy(self, name: str) -> None:
        self.policy(name)
        if self.policy_users(name):
            raise Conflict(f"archive policy {name!r} is in use")
        with self.db.transaction() as conn:
            self.db.table("archive_policies").delete(name)
            self.db.invalidate_caches(conn)

    def rule(self, name: str) -> dict[str, str]:
        rows = self.db.rows("archive_policy_rules", "name = ?", [name])
        if not rows:
            raise NotFound(f"archive policy rule {name!r}")
        return rows[0]

    def create_rule(self, name: str, pattern: str, policy_name: str) -> None:
        self.policy(policy_name)
        try:
            with self.db.transaction() as conn:
                self.db.table("archive_policy_rules").insert(
                    {"name": name, "metric_pattern": pattern, "archive_policy_name": policy_name})
                self.db.invalidate_caches(conn)  # it may win over a rule others matched
        except sqlite3.IntegrityError:
            raise Conflict(f"archive policy rule {name!r} already exists") from None

    def delete_rule(self, name: str) -> None:
        with self.db.transaction() as conn:
            if not self.db.table("archive_policy_rules").count_where("name = ?", [name]):
                raise NotFound(f"archive policy rule {name!r}")
            self.db.table("archive_policy_rules").delete(name)
            self.db.invalidate_caches(conn)

    def rename_rule(self, name: str, new_name: str) -> None:
        """Gnocchi's only change to a rule: its name (what it matches stays)."""
        try:
            with self.db.transaction():
                if not self.db.table("archive_policy_rules").count_where("name = ?", [name]):
                    raise NotFound(f"archive policy rule {name!r}")
                self.db.table("archive_policy_rules").update(name, {"name": new_name})
        except sqlite3.IntegrityError:
            raise Conflict(f"archive policy rule {new_name!r} already exists") from None
