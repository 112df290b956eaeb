"""Give metrics' RRD files a new archive policy's layout without losing what they hold.

``rrdtool create --source OLD`` builds a file in the new layout pre-filled from the old one
(every RRA matched by consolidation function, the best resolution chosen). It is built as
``<file>.rebuild`` and renamed over the old file, so a crash at any moment leaves either the
old file or the new one whole, never half of one; running the rebuild again is harmless.

Writers are not stopped. They go through rrdcached, which opens a file by its path at each
write and keeps no descriptor between writes, so what it writes after the rename lands in
the new file (whose last update is the old one's, so every newer value is accepted). Three
things could still lose a value, and all are avoided:

- rrdcached's write *fails* (and its values are dropped) if the file is fcntl-locked at
  that moment, and every rrdtool call locks the file it opens. So the live file is never
  opened with rrdtool here: its bytes are copied to a private snapshot, and rrdtool reads
  the snapshot.
- rrdcached may write into the *old* file while it is being copied (a reader's FLUSH does
  that). So the copy starts after a FLUSH and is redone if the file's bytes changed
  during it.
- A write that opened the old file just before the rename ends in the old inode, later:
  on a loaded machine, many milliseconds later. So a hard link keeps the old inode, and it
  is checked only once :data:`GRACE` has passed since the rename *and* no writer holds its
  lock (an update holds the file's fcntl lock from just after its open to its close).
  Other files are rebuilt during the grace, so it costs one wait per pass, not per file.
  If a write slipped in, the old inode is kept (``<file>.raced.N``) and the file is built
  again with it as the *first* source. Up to its own last update the old inode holds every
  value in order, whereas the new file, which did not see the stray value, spread its next
  value over that slot too; rrdtool takes each slot from the first source that has it, and
  the last update and counter state from the newest source. Several rounds keep every old
  inode, oldest first: each is right up to its own last update, the next one after it.

rrdcached's FORGET is not used: it would drop values queued since the FLUSH.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import struct
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import rrdtool

from appliance.model import ArchivePolicy, Metric
from appliance.storage.measures import Measures
from appliance.storage.policy import layout

#: Copies redone because the old file changed underneath, and builds redone because a write
#: reached the old inode after the rename, before a metric is given up for this pass.
ATTEMPTS = 20
#: How long after the rename the old inode is watched for a write that opened it before.
#: A write (open, lock, update, close) takes well under a millisecond on an idle machine;
#: this covers a writer thread descheduled on a busy one.
GRACE = 1.0
#: The longest a writer is waited for while it holds the old inode's lock.
LOCK_WAIT = 30.0
#: ``struct flock`` on Linux: l_type, l_whence, l_start, l_len, l_pid (and padding).
_FLOCK = "hhqqi4x"


class RebuildError(RuntimeError):
    """The file kept changing during every attempt; it is left whole, in some layout."""


@dataclass(frozen=True)
class _Swapped:
    """A metric whose new file is in place, and the old inode still to be checked."""

    metric: Metric
    policy: ArchivePolicy
    path: Path  # the live file; ``<path>.prev`` is a hard link to the inode it replaced
    digest: bytes  # of the old file's bytes the new one was built from
    at: float  # time.monotonic() of the rename
    round: int  # how many earlier builds of this pass saw a write slip into the old inode


def rebuild(measures: Measures, work: Iterable[tuple[Metric, ArchivePolicy]]
            ) -> Iterator[tuple[Metric, RebuildError | None]]:
    """Rebuild each metric's file in its policy's layout; yield each metric once it is done
    (with None) or given up for this pass (with the reason), so that progress can be
    recorded as it happens. A metric without a file is done at once: its first write
    creates it in the layout.

    Files are renamed one after another while the renamed ones wait out their grace, so a
    pass costs one grace in all, at its end. ``work`` is read as it goes, so its producer
    can fetch it in pages.
    """
    fresh = iter(work)
    todo: deque[tuple[Metric, ArchivePolicy, int]] = deque()
    watched: deque[_Swapped] = deque()
    while True:
        if not todo and (item := next(fresh, None)) is not None:
            todo.append((*item, 0))
        if not todo and not watched:
            return
        if watched and (not todo or watched[0].at + GRACE <= time.monotonic()):
            swapped = watched.popleft()
            if not _written_late(swapped):
                yield swapped.metric, None
            elif swapped.round + 1 < ATTEMPTS:
                todo.append((swapped.metric, swapped.policy, swapped.round + 1))
            else:
                yield swapped.metric, RebuildError(
                    f"{swapped.path.name}: its old file kept receiving writes after "
                    f"{ATTEMPTS} renames")
            continue
        metric, policy, round_ = todo.popleft()
        try:
            swapped = _swap(measures, metric, policy, round_)
        except RebuildError as exc:
            yield metric, exc
            continue
        if swapped is None:
            yield metric, None
        else:
            watched.append(swapped)


def _swap(measures: Measures, metric: Metric, policy: ArchivePolicy, round_: int
          ) -> _Swapped | None:
    """Build the new file from a copy of the live one and rename it over the live one."""
    path = measures.path(metric.id)
    if not path.is_file():
        return None
    tmp, old, snapshot = (_sibling(path, s) for s in (".rebuild", ".prev", ".snapshot"))
    for _ in range(ATTEMPTS):
        measures.flush(metric.id)
        content = path.read_bytes()
        snapshot.write_bytes(content)
        tmp.unlink(missing_ok=True)
        # Old inodes kept by earlier rounds, and one left by a pass cut short by a crash,
        # come first: each is right up to its own last update (see the module's docstring).
        sources = _raced(path) + [p for p in (old,) if p.is_file()] + [snapshot]
        rrdtool.create(str(tmp), *[a for s in sources for a in ("--source", str(s))],
                       *layout(metric, policy))
        if path.read_bytes() != content:
            continue  # a write landed in the old file during the copy: copy again
        old.unlink(missing_ok=True)
        os.link(path, old)  # the old inode, checked after the grace
        os.replace(tmp, path)
        return _Swapped(metric, policy, path, _digest(content), time.monotonic(), round_)
    tmp.unlink(missing_ok=True)
    raise RebuildError(f"{path.name} kept changing during {ATTEMPTS} copies")


def _written_late(swapped: _Swapped) -> bool:
    """Whether a write reached the old inode after the rename; if none did, tidy up."""
    old, snapshot = (_sibling(swapped.path, s) for s in (".prev", ".snapshot"))
    time.sleep(max(0.0, swapped.at + GRACE - time.monotonic()))
    _wait_unlocked(old)
    raced = _raced(swapped.path)
    if _digest(old.read_bytes()) != swapped.digest:
        # Kept, after the older ones, as a source of the next build.
        os.replace(old, _sibling(swapped.path, f".raced.{len(raced) + 1}"))
        return True
    for leftover in (old, snapshot, *raced):
        leftover.unlink(missing_ok=True)
    return False


def _raced(path: Path) -> list[Path]:
    """The old inodes kept by earlier rounds of this file's rebuild, oldest first."""
    found = path.parent.glob(path.name + ".raced.*")
    return sorted(found, key=lambda p: int(p.name.rsplit(".", 1)[1]))


def _wait_unlocked(path: Path) -> None:
    """Return once no process holds a lock on ``path`` (or after :data:`LOCK_WAIT`).

    An open file description lock query sees every process's locks, rrdcached's included,
    and takes none, so it cannot make a write fail.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        deadline = time.monotonic() + LOCK_WAIT
        query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        while time.monotonic() < deadline:
            held = struct.unpack(_FLOCK, fcntl.fcntl(fd, fcntl.F_OFD_GETLK, query))[0]
            if held == fcntl.F_UNLCK:
                return
            time.sleep(0.001)
    finally:
        os.close(fd)


def _digest(content: bytes) -> bytes:
    return hashlib.blake2b(content, digest_size=16).digest()


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)
