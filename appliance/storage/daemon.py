"""Starting rrdcached: the command line, and what must happen before it runs."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from subprocess import DEVNULL, Popen
from typing import IO

from appliance.config import Settings
from appliance.storage.wal import ReplayReport, replay

log = logging.getLogger(__name__)


def flush_interval(settings: Settings) -> int:
    """rrdcached's ``-f``: how often it writes out files that stopped receiving updates."""
    return max(120, 2 * settings.storage.write_delay)


def wal_retention(settings: Settings) -> float:
    """How long a write-ahead log segment must be kept after its last append.

    rrdcached writes a file's values once the oldest is older than the write delay (plus up
    to the jitter) when an update arrives; a file that receives no more updates waits for
    the next flush round, up to ``-f`` later. A margin covers a slow disk.
    """
    s = settings.storage
    return s.write_delay + s.write_jitter + flush_interval(settings) + 120


def rrdcached_argv(settings: Settings) -> list[str]:
    """rrdcached in the foreground, confined to the RRD dir, flushed at exit.

    No ``-j``: the appliance's own write-ahead log is the journal (see storage/wal.py).

    One write thread (``-t 1``): rrdcached 1.7's write threads do not exclude each other
    per file, and the fcntl lock librrd takes does not exclude threads of one process. A
    file being written (a large batch takes tens of milliseconds) that gets a new value
    and a FLUSH is written by a second thread at the same time; the two updates interleave
    and the one that finishes last writes its stale header over the other's, so the other's
    values are lost although rrdcached reported no error. Measured: a rebuild under a
    flushing writer lost a value in 1 run of 4; with one thread, none in 20.
    """
    s = settings.storage
    return [
        "rrdcached",
        "-g",  # foreground: supervisord watches it
        "-l", f"unix:{settings.rrdcached_socket}",
        "-m", "0660",
        "-p", str(settings.run_dir / "rrdcached.pid"),
        "-b", str(settings.rrd_dir),
        "-B",  # refuse paths outside the RRD dir
        "-F",  # write everything out at shutdown
        "-w", str(s.write_delay),
        "-z", str(max(1, s.write_jitter)),
        "-f", str(flush_interval(settings)),
        "-t", "1",
    ]


def prepare(settings: Settings) -> ReplayReport:
    """Ready the data dir for a (re)start of rrdcached; say what the replay did.

    After a ``kill -9`` rrdcached leaves its pid file and socket behind and refuses to start
    ("Another rrdcached daemon is running??"); the values it had acknowledged but not written
    are replayed from the appliance's own write-ahead log. rrdcached journals left by
    versions that still used ``-j`` are replayed once too, then removed. Nothing here stops
    the start: a replay problem is logged, never raised.
    """
    for d in (settings.rrd_dir, settings.run_dir):
        d.mkdir(parents=True, exist_ok=True)
    pidfile = settings.run_dir / "rrdcached.pid"
    if pidfile.exists() and not _alive(pidfile):
        pidfile.unlink()
        Path(settings.rrdcached_socket).unlink(missing_ok=True)
    for tmp in settings.rrd_dir.glob("*/.*.tmp"):  # a creation cut short by a crash
        tmp.unlink(missing_ok=True)
    journal_dir = settings.data_dir / "journal"
    journals = sorted(journal_dir.glob("rrd.journal.*")) if journal_dir.is_dir() else []
    report = replay(settings.data_dir / "wal", settings.rrd_dir, journals)
    for old in journals:
        old.unlink(missing_ok=True)
    level = logging.WARNING if report.failed or report.set_aside or report.torn else logging.INFO
    log.log(level, "%s", report.summary())
    return report


def _alive(pidfile: Path) -> bool:
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def rrdcached_process(settings: Settings, log: IO[bytes] | int | None = None) -> Iterator[Popen]:
    """rrdcached as a child of this process, for tools that run without supervisord.

    Benchmarks and tests use it; it prepares the data dir exactly as the supervised program
    does, waits for the socket, and stops the daemon (flushing it) on exit.
    """
    prepare(settings)
    proc = Popen(rrdcached_argv(settings), stdout=log or DEVNULL, stderr=log or DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not settings.rrdcached_socket.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rrdcached did not start (exit code {proc.poll()})")
            time.sleep(0.01)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
