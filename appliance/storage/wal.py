"""Our own write-ahead log in front of rrdcached.

rrdcached 1.7's journal (``-j``) is written through a stdio buffer: measured here, its
journal file stayed at 0 bytes for seconds after updates were acknowledged, so a ``kill -9``
of rrdcached lost them. Each writer process therefore appends the exact UPDATE commands to a
segment of its own with one unbuffered ``write()`` *before* sending them; the kernel keeps
them if either process dies. Before rrdcached starts, :func:`replay` applies every segment
straight into the RRD files (values not newer than a file's exact last update are skipped,
so replaying twice is harmless). rrdcached runs without its own journal: replaying both
logs queued values the files already held, and rrdcached's later write of that file then
failed at the first of them and dropped every newer value behind it.

Segments are deleted by age, once rrdcached has certainly written their values out: a value
waits at most the write delay plus jitter, or, for a file that stopped receiving updates,
until the next flush round (``-f``); see :func:`appliance.storage.daemon.wal_retention`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import rrdtool

from appliance.storage.errors import DiskFull, is_disk_full
from appliance.storage.rrdfile import UnsupportedFile, last_update, rrd_microseconds

log = logging.getLogger(__name__)

ROTATE_SECONDS = 60.0
_RELPATH = re.compile(r"[0-9a-f]{2}/[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}\.rrd")


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

    def append(self, payload: bytes) -> int:
        """Record rrdcached commands (``UPDATE relpath ts:value ...`` lines, each ending in a
        newline) durably against a process crash, as the exact bytes about to be sent;
        return where they start, for :meth:`retract`.

        On a full disk the segment is cut back to where it was, so no torn line is left
        behind, and :class:`DiskFull` is raised: nothing of the payload was acknowledged.
        """
        if not payload:
            return -1
        try:
            fd = self._segment()
        except OSError as exc:
            if is_disk_full(exc):
                raise DiskFull("create a write-ahead log segment", exc) from exc
            raise
        size = os.fstat(fd).st_size
        try:
            written = os.write(fd, payload)
            if written != len(payload):
                raise OSError(errno.ENOSPC, f"short write ({written} of {len(payload)} bytes)")
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            if is_disk_full(exc):
                raise DiskFull("append to the write-ahead log", exc) from exc
            raise
        return size

    def retract(self, offset: int) -> None:
        """Take back the last append (it starts at ``offset``): rrdcached could not be
        reached, so the caller answers "unavailable" and will send the values again. Left in
        the log, they would be replayed and the retry refused as already held."""
        if self._fd is not None and offset >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, offset)

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


@dataclass(slots=True)
class ReplayReport:
    """What a replay did, for the log line that says so."""

    segments: int = 0
    values: int = 0  # written into the files
    held: int = 0  # already in the files (an earlier replay, or rrdcached wrote them)
    files: int = 0
    malformed: int = 0  # entries that are not ``ts:value``
    torn: int = 0  # last lines cut short by a crash mid-append
    set_aside: list[str] = field(default_factory=list)  # unreadable segments, moved away
    failed: list[str] = field(default_factory=list)  # files that refused their values
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"replayed {self.values} values into {self.files} files from {self.segments} "
            f"write-ahead log segments in {self.seconds:.3f} s ({self.held} already held, "
            f"{self.torn} torn lines, {self.malformed} malformed entries, "
            f"{len(self.set_aside)} segments set aside, {len(self.failed)} files failed)"
        )


def replay(wal_dir: Path, rrd_dir: Path, extra: Iterable[Path] = ()) -> ReplayReport:
    """Write every logged value that its file does not hold yet, straight into the files.

    Runs while rrdcached is stopped (the ``appliance rrdcached`` wrapper calls it before it
    execs the daemon). Never fatal, and idempotent: a value at or before a file's exact last
    update (microseconds, as RRD compares) is skipped; a torn last line, a malformed entry or
    a file that refuses an update is reported and the rest goes on; a segment that cannot be
    read at all is moved to ``wal/set-aside/`` so that it is kept for a person but no longer
    stands in the way. ``extra`` are more files in the same format (rrdcached journals left
    by earlier versions).
    """
    started = time.monotonic()
    report = ReplayReport()
    per_file: dict[str, dict[int, str]] = defaultdict(dict)
    segments = sorted(wal_dir.glob("*.wal")) if wal_dir.is_dir() else []
    for segment in [*segments, *extra]:
        text = _read_segment(segment, wal_dir, report)
        if text is None:
            continue
        report.segments += 1
        lines = text.split("\n")
        if lines[-1]:
            report.torn += 1
            log.warning("wal %s: last line cut short by a crash, ignored", segment.name)
        for line in lines[:-1]:
            _parse_line(line, rrd_dir, per_file, report)
    for relpath, values in per_file.items():
        _apply(rrd_dir / relpath, values, report)
    report.seconds = time.monotonic() - started
    return report


def _read_segment(segment: Path, wal_dir: Path, report: ReplayReport) -> str | None:
    try:
        return segment.read_bytes().decode("utf-8")
    except FileNotFoundError:  # expired by a writer meanwhile
        return None
    except (OSError, UnicodeDecodeError) as exc:
        aside = wal_dir / "set-aside"
        try:
            aside.mkdir(exist_ok=True)
            segment.rename(aside / segment.name)
        except OSError:
            pass
        report.set_aside.append(segment.name)
        log.error("wal %s: unreadable (%s), set aside in %s", segment.name, exc, aside)
        return None


def _parse_line(
    line: str, rrd_dir: Path, per_file: dict[str, dict[int, str]], report: ReplayReport
) -> None:
    command, _, rest = line.partition(" ")
    if command.upper() != "UPDATE":
        return  # rrdcached journals also hold "wrote" markers
    path, _, values = rest.partition(" ")
    relpath = _relpath(path, rrd_dir)
    if relpath is None:
        report.malformed += 1
        return
    held = per_file[relpath]
    for item in values.split():
        ts, _, value = item.partition(":")
        try:
            if not value:
                raise ValueError(item)
            held[rrd_microseconds(float(ts))] = item
        except (ValueError, OverflowError):
            report.malformed += 1


def _relpath(path: str, rrd_dir: Path) -> str | None:
    """The ``ab/<uuid>.rrd`` the write path names; anything else is refused (no path from a
    log line may leave the RRD dir)."""
    if path.startswith("/"):
        prefix = f"{rrd_dir}/"
        if not path.startswith(prefix):
            return None
        path = path[len(prefix) :]
    return path if _RELPATH.fullmatch(path) else None


def _apply(path: Path, values: dict[int, str], report: ReplayReport) -> None:
    if not path.is_file():  # the metric was deleted since
        return
    try:
        last = last_update(path)
    except (OSError, UnsupportedFile) as exc:
        report.failed.append(path.name)
        log.error("wal: cannot read %s (%s); its logged values stay in the log", path, exc)
        return
    todo = [item for usec, item in sorted(values.items()) if usec > last]
    report.held += len(values) - len(todo)
    if not todo:
        return
    report.files += 1
    for i in range(0, len(todo), 500):
        try:
            rrdtool.update(str(path), *todo[i : i + 500])
        except rrdtool.OperationalError as exc:
            report.failed.append(path.name)
            log.error("wal: %s refused logged values: %s", path, exc)
            return
        report.values += len(todo[i : i + 500])
