"""Which of these targets are mine this cycle: tooz groups and a hash ring across appliances.

The agent and the alarm evaluator ask one thing, :meth:`Share.mine`. Without
``coordination.backend_url`` the answer is "all of them" and tooz is never imported. With it,
each process joins the tooz group of its work (``<prefix>.snmp``, ``<prefix>.libvirt``,
``<prefix>.alarms``) and tooz's hash ring over the members decides, as Ceilometer's polling
agents and Aodh's evaluators do: a member joining or leaving moves only the targets of its ring
segments. The host's own sources (host, sensors) are never shared.

A thread reads the members every ``refresh`` seconds (``get_members``: every tooz backend
drops a member whose heartbeat, lease or session has expired there), joins again if this
member is no longer among them, and rebuilds the ring from that one answer. When the backend
is lost the ring is kept as it was (this appliance goes on polling its last share and says so
in its state) and the thread rejoins by itself once the backend answers again.
"""

from __future__ import annotations

import contextlib
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
    """A member of one tooz group; :meth:`mine` is answered from the local ring.

    The ring is rebuilt from each membership read rather than kept up to date by tooz's
    ``Partitioner`` and its join/leave watchers. Those watchers make more backend calls per
    event (a joiner's capabilities) and update the ring one event at a time apart from the
    member cache they diff against; in the churn that follows a backend outage (every
    heartbeat expired, members purging and re-adding each other) one failed call left the
    two out of step for good: a member's ring kept a departed node, or raised ``UnknownNode``
    on every refresh and never rejoined. A ring built from one ``get_members`` answer cannot
    drift, and it is the ring the partitioner builds (weight 1, same partitions, same hash),
    so a membership change still moves only the targets of the changed segments.
    """

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
        self._ring: Any = None  # built from the last membership read, read by mine()
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
    # "@" is in no member name (config pattern, host names) and, unlike "/", is a plain
    # character to every backend: ZooKeeper makes each member a znode under the group's, so
    # a "/" in the id named a child of a node that does not exist (NoNode, which tooz reads
    # as "group not created", creates the group, finds it exists and retries for ever).
    def _member_id(self) -> bytes:
        return f"{self.work}@{self.member}".encode()

    def _refresh(self) -> None:
        """Read the group's members, join it if this member is not among them, rebuild the ring.

        Every group call is bounded by ``timeout`` (tooz's own ``join_group_create`` and
        ``Partitioner`` wait without a bound); any failure keeps the last ring.
        """
        from tooz import coordination

        group, me = self.group.encode(), self._member_id()
        try:
            if self._coordinator is None:  # one coordinator for life: it reconnects by itself
                coordinator = coordination.get_coordinator(self._url, me)
                coordinator.start(start_heart=True)
                self._coordinator = coordinator
            try:
                members = self._coordinator.get_members(group).get(timeout=self.timeout)
            except coordination.GroupNotCreated:
                members = set()
            if me not in members:  # first start, or expired while the backend was away
                if self._ring is not None:
                    log.warning("coordination: no longer a member of %s; rejoining", self.group)
                self._join(group)
                members = self._coordinator.get_members(group).get(timeout=self.timeout)
                log.info("coordination: joined group=%s as %s via %s (%d members)", self.group,
                         self.member, self.backend, len(members))
        except Exception as exc:  # any backend failure: keep the old ring, retry later
            self._lost(exc)
            return
        self._snapshot(members)  # (missing us again if purged meanwhile: rejoined next time)
        self._back()

    def _join(self, group: bytes) -> None:
        """Join ``group``, creating it first if need be (tooz's ``join_group_create`` retries
        without a bound; this gives up after one round and tries again next refresh)."""
        from tooz import coordination

        capabilities = {"weight": 1}  # what tooz's Partitioner reads, for other tooz clients
        try:
            self._coordinator.join_group(group, capabilities).get(timeout=self.timeout)
        except coordination.GroupNotCreated:
            with contextlib.suppress(coordination.GroupAlreadyExist):
                self._coordinator.create_group(group).get(timeout=self.timeout)
            self._coordinator.join_group(group, capabilities).get(timeout=self.timeout)
        except coordination.MemberAlreadyExist:  # our previous life, killed: replace it
            self._coordinator.leave_group(group).get(timeout=self.timeout)
            self._coordinator.join_group(group, capabilities).get(timeout=self.timeout)

    def _back(self) -> None:
        if self.lost_since is not None:
            log.warning("coordination: backend %s is back after %.0fs", self.backend,
                        time.time() - self.lost_since)
        self.connected, self.lost_since, self.last_error = True, None, None
        self._publish()

    def _snapshot(self, members: set[bytes]) -> None:
        """Build the ring of these members, so that mine() never waits on the backend."""
        from tooz.hashring import HashRing
        from tooz.partitioner import Partitioner

        ring = HashRing(members, partitions=Partitioner.DEFAULT_PARTITION_NUMBER)
        # (a member id of another form, from another tooz client, is shown as it is)
        names = sorted(m.decode().split("@", 1)[-1] for m in members)
        if names != self.members:
            log.info("coordination: %s members: %s", self.group, ", ".join(names))
        with self._lock:
            self._ring = ring
            self.members = names

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
        self._refresh()
        self._tried.set()
        while not self._stop.wait(self.refresh if self.connected else self.rejoin_after):
            self._refresh()

    def mine(self, targets: Sequence[str]) -> list[str]:
        """The targets the ring gives this member (the last ring known, if the backend is away)."""
        me = self._member_id()
        with self._lock:
            ring = self._ring
        if ring is None or not ring.nodes:  # polling everything beats polling nothing
            owned = list(targets)
        else:  # (tooz's Partitioner hashes an object as str(obj) in UTF-8, as here)
            owned = [t for t in targets if me in ring.get_nodes(str(t).encode())]
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
