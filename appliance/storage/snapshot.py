"""A consistent copy of the measures of a running appliance, for ``appliance backup``.

rrdcached is asked to write out everything it holds first. A file that is updated while it
is copied (a read's flush can write one at any time) would give a torn copy, so each file's
exact last update is read before and after its copy, and a changed file is copied again.
The write-ahead log goes along too: whatever rrdcached acknowledged after the flush is in it,
and the restored appliance replays it at its first start.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from appliance.storage.rrdcached import RrdcachedClient, RrdcachedError
from appliance.storage.rrdfile import last_update

log = logging.getLogger(__name__)

COPY_ATTEMPTS = 5


def flush_all(client: RrdcachedClient, timeout: float = 60.0) -> bool:
    """Have rrdcached write out every value it holds; False if it is not running."""
    try:
        client.command("FLUSHALL")
        deadline = time.monotonic() + timeout
        while client.stats().get("QueueLength", 0) > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    except RrdcachedError as exc:
        log.warning("backup: rrdcached not reachable (%s); the write-ahead log covers it", exc)
        return False
    return True


def copy_measures(rrd_dir: Path, wal_dir: Path, destination: Path) -> Iterator[Path]:
    """Copy every RRD file and write-ahead log segment under ``destination``; yield each
    copy's path relative to ``destination``."""
    for source in sorted(rrd_dir.glob("*/*.rrd")):
        rel = Path("rrd") / source.relative_to(rrd_dir)
        target = destination / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        for _attempt in range(COPY_ATTEMPTS):
            try:
                before = last_update(source)
                shutil.copyfile(source, target)
                if last_update(source) == before:
                    break
            except FileNotFoundError:  # deleted meanwhile: not part of the backup
                target.unlink(missing_ok=True)
                break
        else:
            raise RuntimeError(f"{source} kept changing while it was copied")
        if target.exists():
            yield rel
    for segment in sorted(wal_dir.glob("*.wal")) if wal_dir.is_dir() else []:
        rel = Path("wal") / segment.name
        (destination / rel).parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(segment, destination / rel)
        except FileNotFoundError:  # expired meanwhile: rrdcached had written it out
            continue
        yield rel
