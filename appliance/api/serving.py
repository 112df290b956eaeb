"""gunicorn's hooks for the API (``--config python:appliance.api.serving``): shared pages,
and a worker that grew too much is replaced rather than kept.

With ``--preload`` the master imports the app once and forks its workers; collecting and
freezing first (``gc.freeze``) keeps the workers' collector off the inherited objects, so
their pages stay shared instead of being copied by the first collection.

One large request (an aggregate across a thousand metrics, a big batch) can leave a worker
holding a hundred MB or more that glibc does not give back. After every request the worker
reads its anonymous resident memory (a few microseconds); when a request left it
``TRIM_AFTER_GROWTH`` bigger, it trims the heap (``malloc_trim``), and if it still holds more
than ``api.worker_recycle_mb`` beyond what it had when forked (Python's own allocator keeps
partly used pages that no trim returns), it finishes and exits: gunicorn forks a fresh
worker from the preloaded master at once, and the listening socket, held by the master,
queues what arrives meanwhile.
"""

from __future__ import annotations

import gc
import logging
import os

from appliance import gcpolicy

log = logging.getLogger("appliance.api.serving")
_PAGE = os.sysconf("SC_PAGE_SIZE")
#: A request that left the worker this much (or the recycle limit, if smaller) bigger than
#: after the last trim makes it trim.
TRIM_AFTER_GROWTH = 8 * 2**20
#: The worker's anonymous memory right after its fork, and after its last trim (set in
#: post_fork, in the worker).
_at_fork = _after_trim = 0


def anonymous_bytes() -> int:
    """Resident memory not backed by a file (heap, stacks, copied pages): from statm, which
    costs a few microseconds, unlike smaps."""
    with open("/proc/self/statm", "rb") as f:
        _size, resident, shared, *_ = f.read().split()
    return (int(resident) - int(shared)) * _PAGE


def when_ready(server) -> None:
    """In the master, after the app is loaded and before any worker is forked."""
    gc.collect()
    gc.freeze()


def post_fork(server, worker) -> None:
    global _at_fork, _after_trim
    _at_fork = _after_trim = anonymous_bytes()


def post_request(worker, req, environ, resp) -> None:
    """After a request that grew the worker: trim, then retire it if it is still too big."""
    global _after_trim
    limit = worker.wsgi.extensions["appliance.settings"].api.worker_recycle_mb * 2**20
    if anonymous_bytes() - _after_trim < min(TRIM_AFTER_GROWTH, limit):
        return
    gcpolicy.trim()
    _after_trim = anonymous_bytes()
    grown = _after_trim - _at_fork
    if grown > limit:
        log.warning("worker %d grew by %.0f MB since its fork (limit %.0f MB): replacing it",
                    os.getpid(), grown / 2**20, limit / 2**20)
        worker.alive = False
