"""The index's side of changing an archive policy in use: the change and its work queue.

The new definition and one queue row per metric on the policy are written in one
transaction, so a crash leaves either the old policy with nothing queued or the new one with
every metric queued. A row is removed only once that metric's file has the new layout.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from typing import TYPE_CHECKING

from appliance.storage.policy import ArchivePolicy

if TYPE_CHECKING:
    from appliance.index import Index
    from appliance.model import Metric

log = logging.getLogger(__name__)


def change_policy(index: Index, policy: ArchivePolicy) -> int:
    """Give an existing policy a new definition and methods; return how many metrics (its
    users) now wait for a rebuild of their file."""
    from appliance.index import NotFound

    with index.transaction() as conn:
        if not _store(conn, policy):
            raise NotFound(f"archive policy {policy.name!r}")
        queued = _queue(conn, policy.name)
        index.invalidate_caches(conn)
    return queued


def apply_configured(conn: sqlite3.Connection, policy: ArchivePolicy) -> None:
    """Inside the index's seeding transaction: the config's version of a policy, its files
    queued for a rebuild if it changed. A changed finest granularity (the files' step) is
    not applied while metrics use the policy: it is logged and the stored one kept."""
    row = conn.execute("SELECT definition, aggregation_methods, back_window"
                       " FROM archive_policies WHERE name = ?", (policy.name,)).fetchone()
    definition = json.loads(row[0])
    if (definition == [list(p) for p in _definition(policy)]
            and json.loads(row[1]) == list(policy.aggregation_methods)
            and row[2] == policy.back_window):
        return
    used = conn.execute("SELECT count(*) FROM metrics WHERE archive_policy_name = ?",
                        (policy.name,)).fetchone()[0]
    if used and min(g for g, _ in definition) != policy.step:
        log.error("archive policy %r: the config changes its finest granularity, the step of "
                  "the files of its %d metrics; kept as it was", policy.name, used)
        return
    _store(conn, policy)
    if used:
        log.info("archive policy %r changed by the config: %d metric files queued for a "
                 "rebuild", policy.name, _queue(conn, policy.name))
    conn.execute("UPDATE cache_epoch SET value = value + 1")


def _definition(policy: ArchivePolicy) -> list[tuple[int, int]]:
    return [(i.granularity, i.points) for i in policy.definition]


def _store(conn: sqlite3.Connection, policy: ArchivePolicy) -> bool:
    return bool(conn.execute(
        "UPDATE archive_policies SET definition = ?, aggregation_methods = ?, back_window = ?"
        " WHERE name = ?",
        (json.dumps(_definition(policy)), json.dumps(list(policy.aggregation_methods)),
         policy.back_window, policy.name),
    ).rowcount)


def _queue(conn: sqlite3.Connection, policy_name: str) -> int:
    return conn.execute(
        "INSERT OR REPLACE INTO policy_rebuilds(metric_id, policy_name, queued_at)"
        " SELECT id, archive_policy_name, ? FROM metrics WHERE archive_policy_name = ?",
        (time.time(), policy_name),
    ).rowcount


def pending(index: Index, limit: int = 100) -> list[tuple[Metric, float]]:
    """The oldest queued metrics with the time they were queued (rows of deleted metrics go)."""
    from appliance.index import _metric

    with index.transaction() as conn:
        conn.execute("DELETE FROM policy_rebuilds WHERE metric_id NOT IN (SELECT id FROM metrics)")
    rows = index.query(
        "SELECT m.*, r.queued_at AS queued_at FROM policy_rebuilds r"
        " JOIN metrics m ON m.id = r.metric_id ORDER BY r.queued_at, r.metric_id LIMIT ?",
        (limit,),
    )
    return [(_metric(r), r["queued_at"]) for r in rows]


def finished(index: Index, metric_id: str, queued_at: float) -> None:
    """The metric's file has the layout queued at ``queued_at`` (a later change re-queued it
    with a later time, and its row stays)."""
    with index.transaction() as conn:
        conn.execute("DELETE FROM policy_rebuilds WHERE metric_id = ? AND queued_at = ?",
                     (metric_id, queued_at))


def progress(index: Index) -> dict[str, int]:
    """``{policy name: metrics still waiting}`` for every policy being rebuilt."""
    return {r[0]: r[1] for r in index.query(
        "SELECT policy_name, count(*) FROM policy_rebuilds GROUP BY policy_name")}


def metric_count(index: Index, policy_name: str) -> int:
    return index.query("SELECT count(*) FROM metrics WHERE archive_policy_name = ?",
                       (policy_name,))[0][0]
