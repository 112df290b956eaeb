"""The store's failures, named so that callers can answer them without knowing RRD or SQLite.

An API turns :class:`StoreUnavailable` into 503 + ``Retry-After`` and :class:`DiskFull` into
507; an agent keeps its backlog and reports either per source. Everything else that goes
wrong in the store is a bug and stays an ordinary exception.
"""

from __future__ import annotations

import errno
import sqlite3

#: Seconds a client is asked to wait when the store is unreachable: rrdcached is restarted by
#: supervisord within a second and replays its log in a few.
RETRY_AFTER = 5

_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_FULL_TEXTS = ("no space left on device", "database or disk is full", "disk quota exceeded")


class StoreUnavailable(OSError):
    """rrdcached cannot be reached (restarting, replaying its log, or stopped)."""


class DiskFull(OSError):
    """The data dir's filesystem has no room for a file, a log append or the index."""

    def __init__(self, what: str, cause: BaseException | str):
        super().__init__(errno.ENOSPC, f"disk full: cannot {what} ({cause})")
        self.what = what


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (an OSError, an SQLite error or an rrdtool error) means "no room".

    rrdtool reports ENOSPC only as text (``...: No space left on device``) and SQLite as
    ``database or disk is full``, so both are recognised by their message as well.
    """
    if isinstance(exc, DiskFull):
        return True
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return True
    if isinstance(exc, sqlite3.Error | OSError) or type(exc).__module__ == "rrdtool":
        text = str(exc).lower()
        return any(t in text for t in _FULL_TEXTS)
    return False
