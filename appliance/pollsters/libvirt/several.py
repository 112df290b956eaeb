"""Several hypervisors, each one target: one :class:`LibvirtPollster` per libvirt URI.

With ``pollsters.libvirt.uris`` an appliance reads remote hypervisors (``qemu+ssh://``...), and
with coordination several appliances share them like SNMP devices. Each URI keeps its own
connection, reader and lifecycle events, and the URIs are read in parallel so that one that
hangs only uses its own share of the deadline.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from appliance.config import LibvirtSettings
from appliance.model import PollResult
from appliance.pollsters.base import Emit, Pollster
from appliance.pollsters.libvirt.pollster import LibvirtPollster


class SeveralHypervisors(Pollster):
    source = "libvirt"

    def __init__(self, settings: LibvirtSettings) -> None:
        self.members = {uri: LibvirtPollster(settings.model_copy(update={"uri": uri}))
                        for uri in dict.fromkeys(settings.uris)}
        self._pool = ThreadPoolExecutor(len(self.members), thread_name_prefix="libvirt-uri")

    def targets(self) -> Sequence[str]:
        return list(self.members)

    def poll(self, targets: Sequence[str], deadline: float) -> PollResult:
        futures = [self._pool.submit(self.members[uri].poll, [uri], deadline)
                   for uri in targets if uri in self.members]
        result = PollResult()
        for future in futures:
            result.extend(future.result())
        return result

    def start_events(self, emit: Emit) -> None:
        for member in self.members.values():
            member.start_events(emit)

    def close(self) -> None:
        for member in self.members.values():
            member.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
