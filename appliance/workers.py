"""One preloaded parent that forks a worker process per source: how the agents run.

Why: each agent used to be an interpreter of its own, and each paid 35-45 MB PSS for
nearly the same imported modules (the store, sqlite-utils, numpy through it, pydantic,
pysnmp, libvirt). Here every module is imported once (by ``appliance run``, which then runs
supervisord in the same process and forks this parent from it:
:mod:`appliance.forking_supervisord`), what is held is collected and frozen
(``gc.freeze()``: the children's collector then never walks, and so never copies, the
inherited objects; :mod:`appliance.prefork` says what else keeps them from copying), and
this parent forks one child per source: the pages stay shared copy-on-write.

Isolation is what separate interpreters gave, because the children still are separate
processes: a hung libvirt call or a dead SNMP device stalls only its own child, and a crash
in one source's code (an exception out of the agent, even a segfault in a C binding) ends
only that child, which the parent forks again after a back-off; the other sources never
notice. The parent runs no source code itself and starts no thread, so it is safe to fork.
Titles (``setproctitle``) keep ``ps`` and the status page readable: ``appliance: workers``
and one ``appliance: poll-<source>`` per child, each followed by ``[<data dir>]`` so that
two appliances on one machine (the tests run several) stay apart. The API's child runs
gunicorn, which titles its arbiter and workers itself (``gunicorn: master [appliance-api
<data dir>]``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from setproctitle import setproctitle

from appliance import prefork
from appliance.lifeline import die_with_parent

log = logging.getLogger(__name__)

#: Title prefix of every process this module names (the status page looks for it).
TITLE = "appliance: "
#: The API's child retitles itself: gunicorn names its arbiter "gunicorn: master [<name>]",
#: and appliance/web/api/server.py gives it a name that starts "appliance-api".
API_TITLE = "gunicorn: master [appliance-api"
#: A child that lived at least this long is restarted at once; a quicker death doubles the
#: wait (up to MAX_BACKOFF), so a source that crashes at start does not spin the CPU.
STABLE_SECONDS = 30.0
FIRST_BACKOFF, MAX_BACKOFF = 1.0, 60.0
#: How long a stopping parent waits for its children (supervisord's stopwaitsecs is 8).
STOP_GRACE = 6.0
_SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}


@dataclass
class Worker:
    """One child the parent keeps running: its name and what it runs once forked."""

    name: str
    main: Callable[[], object]
    pid: int | None = None
    started: float = 0.0
    backoff: float = 0.0
    restart_at: float = 0.0


def freeze_imports() -> None:
    """After the caller imported what the children will need: freeze the survivors and
    fill the heap's holes (:mod:`appliance.prefork`), so that the children share those
    pages (copy-on-write) instead of copying them."""
    prefork.prepare()


def restart_delay(worker: Worker, lived: float) -> float:
    """The wait before forking ``worker`` again after it lived ``lived`` seconds."""
    if lived >= STABLE_SECONDS:
        worker.backoff = 0.0
    else:
        worker.backoff = min(MAX_BACKOFF, max(FIRST_BACKOFF, worker.backoff * 2))
    return worker.backoff


def title(name: str, tag: str) -> str:
    return f"{TITLE}{name} [{tag}]"


def name_of(process_title: str) -> str | None:
    """The worker name in a title this module set (or gunicorn set, for the API), else
    None."""
    if process_title.startswith(API_TITLE):
        return "api"
    if not process_title.startswith(TITLE):
        return None
    return process_title.removeprefix(TITLE).split(" [", 1)[0]


def _spawn(worker: Worker, tag: str) -> None:
    pid = os.fork()
    if pid:
        worker.pid, worker.started = pid, time.monotonic()
        log.info("worker %s started (pid %d)", worker.name, pid)
        return
    code = 0
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        die_with_parent()  # no orphaned pollers if the parent is killed
        setproctitle(title(worker.name, tag))
        worker.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        log.exception("worker %s crashed", worker.name)
        code = 1
    finally:
        logging.shutdown()
        os._exit(code)


def supervise(workers: list[Worker], tag: str, name: str = "workers") -> int:
    """Fork every worker, fork again whichever ends, until SIGTERM or SIGINT; return 0.

    Signals are taken synchronously (``sigtimedwait``) so the loop sleeps until a child
    ends, a stop is asked for, or a back-off expires: no polling.
    """
    setproctitle(title(name, tag))
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    by_pid: dict[int, Worker] = {}
    for w in workers:
        _spawn(w, tag)
        by_pid[w.pid] = w  # type: ignore[index]
    while True:
        waiting = [w for w in workers if w.pid is None]
        now = time.monotonic()
        for w in waiting:
            if w.restart_at <= now:
                _spawn(w, tag)
                by_pid[w.pid] = w  # type: ignore[index]
        waiting = [w.restart_at - now for w in workers if w.pid is None]
        info = signal.sigtimedwait(_SIGNALS, max(0.05, min(waiting)) if waiting else 3600)
        if info is None:
            continue
        if info.si_signo in (signal.SIGTERM, signal.SIGINT):
            return _stop(by_pid)
        _reap(by_pid)


def _reap(by_pid: dict[int, Worker]) -> None:
    """Collect every ended child and schedule its restart."""
    while by_pid:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            return
        worker = by_pid.pop(pid, None)
        if worker is None:
            continue
        lived = time.monotonic() - worker.started
        delay = restart_delay(worker, lived)
        worker.pid, worker.restart_at = None, time.monotonic() + delay
        how = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
               else f"status {os.waitstatus_to_exitcode(status)}")
        log.warning("worker %s (pid %d) ended with %s after %.1fs; restarting in %.0fs",
                    worker.name, pid, how, lived, delay)


def _stop(by_pid: dict[int, Worker]) -> int:
    for pid in by_pid:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while by_pid and time.monotonic() < deadline:
        pid, _status = os.waitpid(-1, os.WNOHANG)
        if pid:
            by_pid.pop(pid, None)
        else:
            time.sleep(0.05)
    for pid in by_pid:
        _signal(pid, signal.SIGKILL)
    return 0


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
