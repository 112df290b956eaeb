"""gunicorn's hooks for the API (``--config python:appliance.web.api.serving``): shared pages,
and a worker that grew too much is replaced rather than kept.

With ``--preload`` the master imports the app once and forks its workers; collecting and
freezing first (``gc.freeze``) keeps the workers' collector off the inherited objects, so
their pages stay shared instead of being copied by the first collection, and the heap's
holes are filled (:mod:`appliance.prefork`: the arbiter's own set-up left new ones).

One large request (an aggregate across a thousand metrics, a big batch) can leave a worker
holding a hundred MB or more that glibc does not give back. After every request the worker
reads its anonymous resident memory (``/proc/self/statm``, a few microseconds). When a
request left it ``TRIM_AFTER_GROWTH`` bigger, and every ``CHECK_EVERY`` requests in any
case (pages copied from the master grow a worker without growing that figure), it trims
the heap (``malloc_trim``) and reads the memory only it holds (USS, from smaps_rollup: 1-3
ms here, spent after the response is written). Past ``api.worker_recycle_mb`` it exits
after that request: gunicorn forks a fresh worker from the preloaded master at once, and
the listening socket, held by the master, queues what arrives meanwhile. Python's
allocator keeps partly used pages that no trim returns, which is why replacing the worker
is the step that really gives memory back.

Between those checks glibc keeps up to ``TRIM_AFTER_GROWTH`` of freed heap mapped
(:func:`appliance.gcpolicy.keep_free_heap`): left to its default it handed each freed
array of a query back to the kernel and faulted it in again for the next one. That heap
serves a dashboard's burst of queries; once the worker has been idle for ``IDLE_TRIM``
seconds a thread of its own trims it, so an idle appliance does not keep it.

What a trim cannot give back is most of what serving leaves: pages the worker shares with
the master, copied when a request merely read an inherited object (CPython writes its
reference count), and the partly used pages of Python's allocator. After a burst they
stay with the worker however idle it is, 6-9 MB each here (benchmarks/footprint.py). So the
same thread replaces a worker that has been idle for ``api.worker_idle_recycle_s`` if it
holds ``IDLE_RECYCLE_GROWTH`` more of its own than when it started, as php-fpm's
``ondemand`` pool retires idle workers: a fresh fork holds only what it shares. A worker
that keeps serving, as under a dashboard, is never idle that long and is not replaced; one
that served nothing has not grown, and is not replaced either, so an idle appliance does
not churn.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from appliance import gcpolicy, prefork, retention
from appliance.lifeline import die_with_parent

log = logging.getLogger("appliance.web.api.serving")
_PAGE = os.sysconf("SC_PAGE_SIZE")
#: A request that left the worker this much (or the recycle limit, if smaller) bigger than
#: at the last check makes it check now.
TRIM_AFTER_GROWTH = 8 * 2**20
#: Requests between two checks at most.
CHECK_EVERY = 64
#: Seconds without a request after which a worker trims the freed heap it kept (and the
#: granularity of the idle thread's checks).
IDLE_TRIM = 2.0
#: Memory of its own an idle worker must hold beyond what it held when it started for
#: replacing it to pay: below this a fork gives back too little to be worth its log line.
IDLE_RECYCLE_GROWTH = 2 * 2**20
#: Anonymous memory at the last check, and requests since (this worker's; set in post_fork).
_checked_at = 0
_requests = 0
#: When the last request ended, whether the heap was trimmed since, and whether the worker
#: served since the idle thread last weighed replacing it (monotonic clock).
_last_request = 0.0
_trimmed = True
_served = False
#: Memory of its own when the worker was ready to serve (post_worker_init).
_own_at_start = 0


def anonymous_bytes() -> int:
    """Resident memory not backed by a file (heap, stacks, copied pages): from statm, which
    costs a few microseconds, unlike smaps."""
    with open("/proc/self/statm", "rb") as f:
        _size, resident, shared, *_ = f.read().split()
    return (int(resident) - int(shared)) * _PAGE


def own_bytes() -> int:
    """Memory that only this process holds (USS): what replacing it gives back."""
    with open("/proc/self/smaps_rollup", "rb") as f:
        fields = dict(line.split()[:2] for line in f.read().splitlines()[1:])
    return (int(fields[b"Private_Clean:"]) + int(fields[b"Private_Dirty:"])) * 1024


def when_ready(server) -> None:
    """In the master, after the app is loaded and before any worker is forked."""
    prefork.prepare()


def pre_fork(server, worker) -> None:
    """In the master, before it forks a worker: whether that worker resumes a rebuild.

    Asked here rather than in the worker: the question opens SQLite, 0.9 MB of pages that a
    worker asking it would copy for itself, and the master holds them once for all.
    """
    worker.resume_rebuild = retention.resume_needed(worker.app.wsgi().extensions[
        "appliance.settings"])


def post_fork(server, worker) -> None:
    """In each new worker: its memory baseline, and the rebuild of a policy change cut short
    by a crash or restart (one process at a time works the queue, under a lock file)."""
    global _checked_at, _requests
    # A worker whose arbiter was killed would otherwise notice only at its next loop (up to
    # half of gunicorn's timeout), holding the listening socket the arbiter forked again
    # needs to bind.
    die_with_parent()
    # A query's arrays reuse the last one's pages: freed heap up to the growth that makes
    # post_request trim stays mapped (a worker holds at most that much more between trims).
    gcpolicy.keep_free_heap(TRIM_AFTER_GROWTH)
    _checked_at, _requests = anonymous_bytes(), 0
    settings = worker.app.wsgi().extensions["appliance.settings"]
    threading.Thread(target=_when_idle, args=(worker, settings.api.worker_idle_recycle_s),
                     name="when-idle", daemon=True).start()
    if worker.resume_rebuild:  # see pre_fork; the app is the one the master preloaded
        retention.rebuild_in_background(settings)


def post_worker_init(worker) -> None:
    """In each new worker, set up and about to serve: the memory of its own it starts with,
    against which an idle worker's growth is weighed (after gunicorn's own set-up, which
    copies pages of its own that no replacement would give back)."""
    global _own_at_start
    _own_at_start = own_bytes()


def post_request(worker, req, environ, resp) -> None:
    """Now and then, and after a request that grew the worker: trim, then retire the worker
    if it still holds more than the bound."""
    global _checked_at, _requests, _last_request, _trimmed, _served
    limit = worker.wsgi.extensions["appliance.settings"].api.worker_recycle_mb * 2**20
    _requests += 1
    _last_request, _trimmed, _served = time.monotonic(), False, True
    if (_requests % CHECK_EVERY
            and anonymous_bytes() - _checked_at < min(TRIM_AFTER_GROWTH, limit)):
        return
    gcpolicy.trim()
    _checked_at = anonymous_bytes()
    own = own_bytes()
    if own > limit:
        log.warning("worker %d holds %.0f MB of its own (bound %.0f MB): replacing it",
                    os.getpid(), own / 2**20, limit / 2**20)
        worker.alive = False


def _when_idle(worker, recycle_after: float) -> None:
    """A worker's thread: trim the heap once no request came for ``IDLE_TRIM`` seconds, and
    replace the worker once none came for ``recycle_after`` (0: never) if it has grown.

    It wakes every ``IDLE_TRIM`` seconds and only reads globals unless there is work; a
    trim that meets a request costs that request a few page faults, nothing more. The
    worker is retired the way gunicorn retires it on SIGTERM: ``alive`` cleared and its
    wake-up pipe written, so it leaves its wait at once, or after the request that came
    meanwhile; the arbiter forks the next, and the listening socket queues what arrives.
    Not while a policy rebuild runs in this worker: it is weighed again once that ends.
    """
    global _trimmed, _served
    while True:
        time.sleep(IDLE_TRIM)
        idle = time.monotonic() - _last_request
        if not _trimmed and idle >= IDLE_TRIM:
            _trimmed = True
            gcpolicy.trim()
        if (_served and recycle_after and idle >= recycle_after
                and not retention.rebuilding()):
            _served = False  # weighed once per idle spell: smaps costs a few ms
            grown = own_bytes() - _own_at_start
            if grown > IDLE_RECYCLE_GROWTH:
                log.info("API worker %d idle for %.0f s holds %.1f MB more than when it "
                         "started: replacing it", os.getpid(), idle, grown / 2**20)
                worker.alive = False
                os.write(worker.PIPE[1], b"1")
                return
