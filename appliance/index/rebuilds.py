"""The work queue of archive policy changes made in use (migration 6): module functions
over an :class:`Index`, like :mod:`.events`.

:meth:`Policies.change_policy` (and a changed config policy at seeding) writes the new
definition and one row per metric on the policy in one transaction; a row is removed only
once that metric's file has the new layout, so an interrupted rebuild resumes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from appliance.index import Index
from appliance.index.metrics import _metric
from appliance.model import Metric


def pending(index: Index, limit: int = 100) -> list[tuple[Metric, float]]:
    """The oldest queued metrics with the time they were queued (rows of deleted metrics go)."""
    with index.transaction() as conn:
        conn.execute("DELETE FROM policy_rebuilds WHERE metric_id NOT IN (SELECT id FROM metrics)")
    rows = index.query(
        "SELECT m.*, r.queued_at AS queued_at FROM policy_rebuilds r"
        " JOIN metrics m ON m.id = r.metric_id ORDER BY r.queued_at, r.metric_id LIMIT ?",
        (limit,),
    )
    return [(_metric(r), r["queued_at"]) for r in rows]


def any_queued(path: Path) -> bool:
    """Whether any metric waits for a rebuild, read over a bare read-only connection.

    What the API's master asks before it forks a worker: opening the index for it (its
    repositories, its migrations check) cost each worker, when it asked itself, 2.6 MB of
    its own, even one that then served nothing.
    """
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT 1 FROM policy_rebuilds LIMIT 1").fetchone() is not None
    finally:
        conn.close()


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
