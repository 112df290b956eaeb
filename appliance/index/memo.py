"""Answers read from the index, kept per process until a row they came from may have changed.

A GET of measures asks the index two questions, "whose token is this" and "which metric is
this id", and the SELECTs and row conversions behind them cost more than reading the RRD.
Only answers that found something are kept, so creating a token or a metric needs no
invalidation; revoking a token, deleting a metric (and every other update or deletion)
moves :meth:`appliance.index.Index.epoch` in its own transaction, from any process, and
the memo starts over when it sees a new epoch: one single-row SELECT per lookup. Agents'
steady commits (health, counters, new metrics) leave the memo alone.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

from appliance.index import Index

T = TypeVar("T")

#: Beyond this many answers the memo starts over.
MAX_ENTRIES = 10_000


class IndexMemo:
    """``get(key, compute)`` returns ``compute()``'s answer while the index epoch holds."""

    def __init__(self, index: Index):
        self._index = index
        self._seen: int | None = None
        self._answers: dict[Hashable, object] = {}

    def get(self, key: Hashable, compute: Callable[[], T | None]) -> T | None:
        epoch = self._index.epoch()
        if epoch != self._seen or len(self._answers) >= MAX_ENTRIES:
            self._answers.clear()
            self._seen = epoch
        try:
            return self._answers[key]  # type: ignore[return-value]
        except KeyError:
            # A change committed between the epoch read and compute() moves the epoch, so
            # the next lookup drops this answer either way.
            answer = compute()
            if answer is not None:  # "not found" is not kept: it may be created any moment
                self._answers[key] = answer
            return answer
