"""Counter continuity across polls: 32-bit wraps unwrapped, agent restarts detected.

The store keeps cumulative meters as RRD DERIVE with min 0, so a value that goes down
yields an unknown, never a negative or huge rate. That is right for a restart (counters
really started again) but loses an interval at every 32-bit wrap, which a busy 100 Mbit/s
port hits every six minutes. So a Counter32 that goes down while the agent has *not*
restarted is taken as a wrap and continued past 2**32; when sysUpTime goes back the
agent restarted and the offsets are dropped, so the value falls and the store sees a reset.
Counter64 never wraps in practice: a decrease there is a reset and is passed through.
"""

from __future__ import annotations

from collections.abc import Hashable

_WRAP32 = 1 << 32


class CounterTracker:
    """Per-target state: the last raw value and the wrap offset of every 32-bit counter."""

    def __init__(self) -> None:
        self._last: dict[Hashable, tuple[int, int]] = {}  # key -> (last raw, offset)
        self._uptime: int | None = None

    def observe_uptime(self, ticks: int | None) -> bool:
        """Record sysUpTime (centiseconds); True when it went back, i.e. the agent restarted.

        A restart forgets every offset: the agent's counters began again from zero.
        """
        restarted = ticks is not None and self._uptime is not None and ticks < self._uptime
        if restarted:
            self._last.clear()
        if ticks is not None:
            self._uptime = ticks
        return restarted

    def unwrap(self, key: Hashable, raw: int, bits: int) -> int:
        """The continued value of a counter: ``raw`` plus the 2**32 multiples it wrapped."""
        if bits != 32:
            return raw
        last = self._last.get(key)
        offset = 0
        if last is not None:
            last_raw, offset = last
            if raw < last_raw:
                offset += _WRAP32
        self._last[key] = (raw, offset)
        return raw + offset

    def forget(self, keep: set[Hashable]) -> None:
        """Drop counters not read this poll (an interface that went away)."""
        for key in [k for k in self._last if k not in keep]:
            del self._last[key]
