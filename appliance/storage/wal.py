"""Our own write-ahead log in front of rrdcached.

rrdcached 1.7's journal (``-j``) is written through a stdio buffer: measured here, its
journal file stayed at 0 bytes for seconds after updates were acknowledged, so a ``kill -9``
of rrdcached lost them. Each writer process therefore appends the exact UPDATE commands to a
segment of its own with one unbuffered ``write()`` *before* sending them; the kernel keeps
them if either process dies. Before rrdcached starts, :func:`replay` applies every segment
straight into the RRD files (values not newer than a file's last update are skipped, so
replaying twice is harmless). Segments are deleted by age, once rrdcached has certainly
written their values out (its write delay plus jitter plus a margin).
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from pathlib import Path

import rrdtool

log = logging.getLogger(__name__)

ROTATE_SECONDS = 60.0


class WriteAheadLog:
    """The segments one writer process appends to."""

    def __init__(self, directory: Path, retention: float):
        self.directory = directory
        self.retention = retention
        directory.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = None
        self._opened_at = 0.0

    def _segment(self) -> int:
        now = time.time()
        if self._fd is None or now - self._opened_at > ROTATE_SECONDS:
            if self._fd is not None:
                os.close(self._fd)
            name = self.directory / f"{os.getpid()}-{now:.6f}.wal"
            self._fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._opened_at = now
            self.expire(now)
        return self._fd

    def append(self, payload: bytes) -> None:
        """Record rrdcached commands (``UPDATE relpath ts:value ...`` lines, each ending in a
        newline) durably against a process crash, as the exact bytes about to be sent."""
        if payload:
            os.write(self._segment(), payload)

    def expire(self, now: float) -> None:
        """Delete segments (of any writer) whose last write is older than the retention."""
        for path in self.directory.glob("*.wal"):
            try:
                if now - path.stat().st_mtime > self.retention:
                    path.unlink()
            except FileNotFoundError:
                pass

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def replay(wal_dir: Path, rrd_dir: Path) -> int:
    """Apply every logged value newer than its file's last update; return how many.

    Runs while rrdcached is stopped (the ``appliance rrdcached`` wrapper calls it before it
    execs the daemon), so it writes the files directly.
    """
    per_file: dict[str, dict[float, str]] = defaultdict(dict)
    for segment in sorted(wal_dir.glob("*.wal")) if wal_dir.is_dir() else []:
        for line in segment.read_text(errors="replace").splitlines():
            command, _, rest = line.partition(" ")
            if command != "UPDATE":
                continue
            relpath, _, values = rest.partition(" ")
            for item in values.split():
                ts, _, value = item.partition(":")
                try:
                    per_file[relpath][float(ts)] = value
                except ValueError:
                    log.warning("wal %s: skipping malformed entry %r", segment.name, item)
    applied = 0
    for relpath, values in per_file.items():
        path = rrd_dir / relpath
        if not path.is_file() or ".." in Path(relpath).parts:
            continue
        last = rrdtool.last(str(path))
        todo = [f"{ts:.3f}:{v}" for ts, v in sorted(values.items()) if ts > last]
        for i in range(0, len(todo), 500):
            rrdtool.update(str(path), *todo[i : i + 500])
        applied += len(todo)
    return applied
