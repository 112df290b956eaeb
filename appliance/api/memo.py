"""Answers read from the index, kept per process until anything commits a change to it.

A GET of measures asks the index two questions, "whose token is this" and "which metric is
this id": a SELECT and a row conversion each, at every request, for answers that change
only when a row does. So they are kept, and all dropped at the first commit seen to the
index file: SQLite's ``PRAGMA data_version`` changes when another connection commits
(another gunicorn worker, ``appliance token revoke``, a pollster), and the connection's
``total_changes`` counts this process's own writes. Checking both is one PRAGMA per
lookup, and a revoked token is refused by every worker at its next request, as with a
lookup every time.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

from appliance.index import Index

T = TypeVar("T")

#: Beyond this many answers the memo starts over (unknown tokens must not grow it forever).
MAX_ENTRIES = 10_000


class IndexMemo:
    """``get(key, compute)`` returns ``compute()``'s answer until the index changes."""

    def __init__(self, index: Index):
        self._index = index
        self._seen: tuple[int, int] | None = None
        self._answers: dict[Hashable, object] = {}

    def _generation(self) -> tuple[int, int]:
        (version,) = self._index.query("PRAGMA data_version")[0]
        return version, self._index.conn.total_changes

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        generation = self._generation()
        if generation != self._seen or len(self._answers) >= MAX_ENTRIES:
            self._answers.clear()
            self._seen = generation
        try:
            return self._answers[key]  # type: ignore[return-value]
        except KeyError:
            # A commit between the PRAGMA and compute() changes the generation, so the next
            # lookup drops this answer either way.
            answer = self._answers[key] = compute()
            return answer
