"""Give one metric's RRD file a new archive policy's layout without losing what it holds.

``rrdtool create --source OLD`` builds a file in the new layout pre-filled from the old one
(every RRA matched by consolidation function, the best resolution chosen). It is built as
``<file>.rebuild`` and renamed over the old file, so a crash at any moment leaves either the
old file or the new one whole, never half of one; running the rebuild again is harmless.

Writers are not stopped. They go through rrdcached, which opens a file by its path at each
write and keeps no descriptor between writes, so what it writes after the rename lands in
the new file (whose last update is the old one's, so every newer value is accepted). Two
things could still lose a value, and both are avoided:

- rrdcached's write *fails* (and its values are dropped) if the file is fcntl-locked at
  that moment, and every rrdtool call locks the file it opens. So the live file is never
  opened with rrdtool here: its bytes are copied to a private snapshot, and rrdtool reads
  the snapshot.
- rrdcached may write into the *old* file while it is being copied (a reader's FLUSH does
  that) or just before the rename. So the copy starts after a FLUSH, is redone if the file's
  bytes changed during it, and after the rename a hard link to the old inode shows whether a
  write slipped in; if one did, the new file is built again with that inode as a second
  source (rrdtool takes a slot from it where the new file has none).

rrdcached's FORGET is not used: it would drop values queued since the FLUSH.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import rrdtool

from appliance.model import ArchivePolicy, Metric
from appliance.storage.measures import Measures
from appliance.storage.policy import layout

#: Copies redone because the old file changed underneath, before giving up on this pass.
ATTEMPTS = 20
#: rrdcached's write of one file (open, write, close) takes well under a millisecond here.
SETTLE = 0.005


class RebuildError(RuntimeError):
    """The file kept changing during every attempt; it is left as it was."""


def rebuild(measures: Measures, metric: Metric, policy: ArchivePolicy) -> bool:
    """Rebuild the metric's file in ``policy``'s layout; False if it has no file yet (its
    first write will create it in that layout)."""
    path = measures.path(metric.id)
    if not path.is_file():
        return False
    tmp, prev, raced, snapshot = (
        _sibling(path, s) for s in (".rebuild", ".prev", ".raced", ".snapshot")
    )
    for _ in range(ATTEMPTS):
        measures.flush(metric.id)
        content = path.read_bytes()
        snapshot.write_bytes(content)
        tmp.unlink(missing_ok=True)
        sources = [snapshot, raced] if raced.is_file() else [snapshot]
        rrdtool.create(str(tmp), *[a for s in sources for a in ("--source", str(s))],
                       *layout(metric, policy))
        if path.read_bytes() != content:
            continue  # a write landed in the old file during the copy: copy again
        prev.unlink(missing_ok=True)
        os.link(path, prev)  # the old inode, watched after the rename
        os.replace(tmp, path)
        time.sleep(SETTLE)  # a write that opened the old inode just before ends meanwhile
        if prev.read_bytes() == content:
            for leftover in (prev, raced, snapshot):
                leftover.unlink(missing_ok=True)
            return True
        # A write reached the old inode at the last moment: keep that inode and build
        # again, taking from it the slots the new file lacks.
        os.replace(prev, raced)
    tmp.unlink(missing_ok=True)
    raise RebuildError(f"{path.name} kept changing during {ATTEMPTS} copies")


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)
