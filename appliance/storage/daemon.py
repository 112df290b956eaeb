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
from appliance.storage.wal import replay

log = logging.getLogger(__name__)


def rrdcached_argv(settings: Settings) -> list[str]:
    """rrdcached in the foreground, confined to the RRD dir, journalled, flushed at exit."""
    s = settings.storage
    return [
        "rrdcached",
        "-g",  # foreground: supervisord watches it
        "-l", f"unix:{settings.rrdcached_socket}",
        "-m", "0660",
        "-p", str(settings.run_dir / "rrdcached.pid"),
        "-j", str(settings.data_dir / "journal"),
        "-b", str(settings.rrd_dir),
        "-B",  # refuse paths outside the RRD dir
        "-F",  # write everything out at shutdown
        "-w", str(s.write_delay),
        "-z", str(max(1, s.write_jitter)),
        "-f", str(max(3600, 2 * s.write_delay)),
    ]


def prepare(settings: Settings) -> int:
    """Ready the data dir for a (re)start of rrdcached; return how many values were replayed.

    After a ``kill -9`` rrdcached leaves its pid file and socket behind and refuses to start
    ("Another rrdcached daemon is running??"); the values it had acknowledged but not written
    are replayed from the appliance's own write-ahead log.
    """
    for d in (settings.rrd_dir, settings.run_dir, settings.data_dir / "journal"):
        d.mkdir(parents=True, exist_ok=True)
    pidfile = settings.run_dir / "rrdcached.pid"
    if pidfile.exists() and not _alive(pidfile):
        pidfile.unlink()
        Path(settings.rrdcached_socket).unlink(missing_ok=True)
    replayed = replay(settings.data_dir / "wal", settings.rrd_dir)
    if replayed:
        log.info("replayed %d values from the write-ahead log", replayed)
    return replayed


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
