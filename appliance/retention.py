"""Changing an archive policy in use: every file on it rebuilt, one metric at a time.

The API's PATCH writes the new policy and queues its metrics (:mod:`appliance.index.rebuilds`)
and starts :func:`rebuild_in_background`; each API worker also starts it when it boots if
the queue holds anything (:func:`resume_needed`), so a rebuild cut short by a crash or a
restart resumes by itself. A lock file lets one process
at a time work through the queue; the lock dies with its holder.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator

from appliance.config import Settings
from appliance.index import rebuilds
from appliance.model import ArchivePolicy, Metric
from appliance.storage import rebuild
from appliance.store import Store

log = logging.getLogger(__name__)
#: How long a worker that boots before rrdcached keeps retrying.
RETRY_FOR = 60.0
#: Queued metrics read from the index at a time.
PAGE = 100


def rebuild_pending(store: Store) -> int:
    """Rebuild every queued metric unless another process is at it; return how many."""
    lock = store.settings.run_dir / "policy-rebuild.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0
        done, failed = 0, set[str]()
        while True:  # a metric queued again during a pass is rebuilt again in the next one
            handed: dict[str, float] = {}  # metric id -> queued at, while it is rebuilt
            for metric, error in rebuild.rebuild(store.measures, _queued(store, handed, failed)):
                queued_at = handed.pop(metric.id)
                if error is not None:
                    log.error("policy %s: metric %s not rebuilt: %s",
                              metric.archive_policy_name, metric.id, error)
                    failed.add(metric.id)  # stays queued for the next start
                    continue
                rebuilds.finished(store.index, metric.id, queued_at)
                done += 1
            if not _queued_again(store, failed):
                break
        if done:
            log.info("archive policy rebuild: %d metric files in their new layout", done)
        return done
    finally:
        os.close(fd)


def _queued(store: Store, handed: dict[str, float], failed: set[str]
            ) -> Iterator[tuple[Metric, ArchivePolicy]]:
    """Each queued metric once, oldest first, read a page at a time; the ones being rebuilt
    (``handed``) and the ones that failed in this run are still in the queue, and skipped."""
    while page := [(m, q) for m, q in rebuilds.pending(store.index, len(handed) + len(failed)
                                                       + PAGE)
                   if m.id not in handed and m.id not in failed]:
        for metric, queued_at in page:
            handed[metric.id] = queued_at
            yield metric, store.index.policy(metric.archive_policy_name)


def _queued_again(store: Store, failed: set[str]) -> bool:
    """Whether a metric was queued again while its file was being rebuilt."""
    return any(m.id not in failed for m, _ in rebuilds.pending(store.index, len(failed) + 1))


def resume_needed(settings: Settings) -> bool:
    """Whether a rebuild cut short (by a crash or a restart) waits in the queue; when the
    index cannot tell, yes (the rebuild's own thread then looks, and logs what it meets)."""
    if not settings.index_path.is_file():
        return False  # no appliance on this data dir yet: nothing can be queued
    try:
        return rebuilds.any_queued(settings.index_path)
    except sqlite3.Error:
        return True


#: The name of the thread that works the queue (:func:`rebuilding` looks for it).
REBUILD_THREAD = "policy-rebuild"


def rebuilding() -> bool:
    """Whether this process is working the queue: an API worker is not retired for being
    idle meanwhile (the work would be cut short, to be taken up again by the next)."""
    return any(t.name == REBUILD_THREAD and t.is_alive() for t in threading.enumerate())


def rebuild_in_background(settings: Settings) -> threading.Thread:
    """Work through the queue in a daemon thread (retrying while rrdcached is not up).

    The thread opens its own store: a worker's rrdcached connection and SQLite handle serve
    its requests meanwhile, and a protocol line from each thread would interleave.
    """

    def work() -> None:
        if not settings.index_path.is_file():
            return  # no appliance on this data dir yet: nothing can be queued
        deadline = time.monotonic() + RETRY_FOR
        while True:
            try:
                store = Store(settings, seed=False)
                try:
                    rebuild_pending(store)
                finally:
                    store.close()
                return
            except OSError as exc:  # rrdcached restarting: its socket is not there yet
                if time.monotonic() > deadline:
                    log.error("archive policy rebuild postponed to the next start: %s", exc)
                    return
                time.sleep(1.0)

    thread = threading.Thread(target=work, name=REBUILD_THREAD, daemon=True)
    thread.start()
    return thread
