"""Which of these targets are mine this cycle: tooz partitioned groups across appliances.

The agent and the alarm evaluator ask one thing, :meth:`Share.mine`. Without
``coordination.backend_url`` the answer is "all of them" and tooz is never imported. With it,
each process joins the tooz partitioned group of its work (``<prefix>.snmp``,
``<prefix>.libvirt``, ``<prefix>.alarms``) and the hash ring decides, as Ceilometer's polling
agents and Aodh's evaluators do: a member joining or leaving moves only the targets of its ring
segments. The host's own sources (host, sensors) are never shared.

A thread reads membership changes every ``refresh`` seconds (tooz ``run_watchers``) and checks
that this member is still in the group. When the backend is lost the ring is kept as it was
(this appliance goes on polling its last share and says so in its state) and the thread
rejoins by itself once the backend answers again.
"""

from __future__ import annotations

import copy
import logging
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from appliance import runstate
from appliance.config import Settings

log = logging.getLogger(__name__)

#: Sources whose targets are shared; the others belong to the machine they run on.
SHARED = ("snmp", "libvirt", "alarms")


class Share:
    """Single node: every target is mine."""

    def mine(self, targets: Sequence[str]) -> list[str]:
        return list(targets)

    def close(self) -> None:
        """Nothing to leave."""


def member_name(settings: Settings) -> str:
    """This appliance's name in every group (``host:api-port`` unless configured)."""
    return settings.coordination.member_id or f"{socket.gethostname()}:{settings.api.port}"


def share(settings: Settings, work: str) -> Share:
    """The share of ``work`` (a source kind, or ``alarms``) this process should take."""
    url = settings.coordination.backend_url
    if url is None or work not in SHARED:
        return Share()
    if work == "libvirt" and not settings.pollsters.libvirt.uris:
        return Share()  # one local hypervisor (``uri``) is this machine's own, like its sensors
    return PartitionedShare(settings, work)


class PartitionedShare(Share):
    """A member of one tooz partitioned group; :meth:`mine` is answered from the local ring."""

    def __init__(self, settings: Settings, work: str):
        cfg = settings.coordination
        assert cfg.backend_url is not None
        self._url = cfg.backend_url.get_secret_value()
        self.backend = urlsplit(self._url).scheme  # never the URL: it may hold a password
        self.group = f"{cfg.group_prefix}.{work}"
        self.member = member_name(settings)
        self.work = work
        self.run_dir = settings.run_dir
        self.refresh, self.rejoin_after, self.timeout = cfg.refresh, cfg.rejoin_after, cfg.timeout
        self._lock = threading.Lock()
        self._coordinator: Any = None
        self._partitioner: Any = None
        self._ring: Any = None  # a copy of the partitioner's ring, read by mine()
        self.connected = False
        self.lost_since: float | None = None
        self.last_error: str | None = None
        self.members: list[str] = []
        self.owned: list[str] = []
        self.total = 0
        self._stop = threading.Event()
        self._tried = threading.Event()  # the first join attempt is over
        self._thread = threading.Thread(target=self._watch, name=f"tooz-{work}", daemon=True)
        self._thread.start()
        # The first cycle should already poll only its share; a dead backend must not hold
        # the agent's start up for long, though.
        self._tried.wait(2 * self.timeout)

    # tooz member ids are per process: an appliance runs one process per shared work kind.
    def _member_id(self) -> bytes:
        return f"{self.member}/{self.work}".encode()

    def _join(self) -> bool:
        """Join (or join again) the group; False if the backend did not let us."""
        from tooz import coordination

        group = self.group.encode()
        try:
            if self._coordinator is None:  # one coordinator for life: it reconnects by itself
                coordinator = coordination.get_coordinator(self._url, self._member_id())
                coordinator.start(start_heart=True)
                self._coordinator = coordinator
            if self._partitioner is not None:  # stop its watch hooks (local only)
                self._partitioner.stop()
                self._partitioner = None
            try:
                self._partitioner = self._coordinator.join_partitioned_group(group)
            except coordination.MemberAlreadyExist:  # our previous life, killed: replace it
                self._coordinator.leave_group(group).get(timeout=self.timeout)
                self._partitioner = self._coordinator.join_partitioned_group(group)
            members = self._coordinator.get_members(group).get(timeout=self.timeout)
        except Exception as exc:  # any backend failure: keep the old ring, retry later
            self._lost(exc)
            return False
        self._snapshot(members)
        log.info("coordination: joined group=%s as %s via %s (%d members)", self.group,
                 self.member, self.backend, len(self.members))
        self._back()
        return True

    def _back(self) -> None:
        if self.lost_since is not None:
            log.warning("coordination: backend %s is back after %.0fs", self.backend,
                        time.time() - self.lost_since)
        self.connected, self.lost_since, self.last_error = True, None, None
        self._publish()

    def _snapshot(self, members: set[bytes]) -> None:
        """Copy the ring the watchers maintain, so that mine() never waits on the backend."""
        ring = copy.deepcopy(self._partitioner.ring)
        with self._lock:
            self._ring = ring
            self.members = sorted(m.decode().rsplit("/", 1)[0] for m in members)

    def _lost(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc or f'no answer within {self.timeout}s'}"
        if self.connected or self.lost_since is None:
            log.warning("coordination: backend %s lost (%s); polling my last share (%d of %d) "
                        "until it is back", self.backend, self.last_error, len(self.owned),
                        self.total)
            self.lost_since = time.time()
        self.connected = False
        self._publish()

    def _watch(self) -> None:
        self._join()
        self._tried.set()
        while not self._stop.wait(self.refresh if self.connected else self.rejoin_after):
            if self._partitioner is None:
                self._join()
                continue
            try:
                self._coordinator.run_watchers(timeout=self.timeout)
                members = self._coordinator.get_members(self.group.encode()).get(
                    timeout=self.timeout)
            except Exception as exc:
                self._lost(exc)
                continue
            if self._member_id() not in members:  # expired while the backend was away
                log.warning("coordination: no longer a member of %s; rejoining", self.group)
                self._join()
                continue
            self._snapshot(members)
            self._back()

    def mine(self, targets: Sequence[str]) -> list[str]:
        """The targets the ring gives this member (the last ring known, if the backend is away)."""
        from tooz.partitioner import Partitioner

        me = self._member_id()
        with self._lock:
            ring = self._ring
        if ring is None:  # never joined: polling everything beats polling nothing
            owned = list(targets)
        else:
            owned = [t for t in targets if me in ring.get_nodes(Partitioner._hash_object(t))]
        self.owned, self.total = owned, len(targets)
        self._publish()
        return owned

    def state(self) -> dict[str, Any]:
        return {"work": self.work, "group": self.group, "member": self.member,
                "backend": self.backend, "connected": self.connected,
                "lost_since": self.lost_since, "last_error": self.last_error,
                "members": self.members, "owned": self.owned, "total": self.total,
                "updated": time.time()}

    def _publish(self) -> None:
        runstate.write(self.run_dir, "coordination", self.work, self.state())

    def close(self) -> None:
        """Leave the group (its targets move at once) and stop heartbeating."""
        self._stop.set()
        self._thread.join(2 * self.refresh)
        if self._coordinator is not None and self.connected:
            _quietly(lambda: self._coordinator.leave_group(self.group.encode()).get(
                timeout=self.timeout))
            _quietly(self._coordinator.stop)


def _quietly(call) -> None:
    try:
        call()
    except Exception as exc:  # leaving a backend that is gone: nothing more to do
        log.debug("coordination: ignored on the way out: %r", exc)
