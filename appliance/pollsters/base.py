"""The contract every pollster keeps: read a source, return a :class:`PollResult`, never write.

Scheduling, deadlines across the whole poll, batching and writing belong to the agent
(:mod:`appliance.agent`); a pollster only knows how to read its source and what to meter.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence

from appliance.model import PollResult

#: Called by a pollster that learns about changes between polls (libvirt lifecycle events).
Emit = Callable[[PollResult], None]


class Pollster(abc.ABC):
    """One kind of source (host, sensors, libvirt, snmp)."""

    #: The source kind, as named in the config's ``pollsters`` section and in health reports.
    source: str = ""

    def targets(self) -> Sequence[str]:
        """Names of the targets this pollster reads (one for local sources).

        The agent asks which of these are its own this cycle (room for partitioning across
        several appliances later) and passes the answer to :meth:`poll`.
        """
        return [self.source]

    @abc.abstractmethod
    def poll(self, targets: Sequence[str], deadline: float) -> PollResult:
        """Read ``targets`` once and return what was measured.

        ``deadline`` is a ``time.monotonic()`` value: a target not read by then is skipped and
        reported with an error; it must not delay the others. Errors of one target are
        reported in :attr:`PollResult.reports`, never raised.
        """

    def start_events(self, emit: Emit) -> None:  # noqa: B027 - optional hook
        """Start delivering changes between polls through ``emit`` (default: none)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; called once when the agent stops."""
