"""Several whole appliances on this machine, read through their own API: shared by the
coordination test and ``benchmarks/scaleout.py`` so that both judge a group the same way.

Each appliance is a :class:`tests.conftest.RunningAppliance` (its own data dir, port,
supervisord and children); what they agree on is read from ``/v1/status``, never from their
files, as an operator would.
"""

from __future__ import annotations

from pathlib import Path

import requests

from tests.conftest import RunningAppliance


def status(app: RunningAppliance) -> dict:
    r = requests.get(f"{app.url}/v1/status", headers=app.headers, timeout=5)
    r.raise_for_status()
    return r.json()["appliance"]


def groups(app: RunningAppliance) -> dict[str, dict]:
    """The appliance's coordination groups by work (``snmp``, ``alarms``, ...)."""
    return {g["work"]: g for g in status(app)["coordination"]["groups"]}


def partitioned(apps: list[RunningAppliance], work: str, names: list[str]) -> bool:
    """Every name owned by exactly one live member, and every member sees them all.

    A share is what its agent last asked the ring for (each cycle), so every member must
    have asked once over all the names (``total``): a member that joined but has not polled
    yet shows none, and with another member's share from before the join (all of them) that
    would add up to "each exactly once" too early.
    """
    try:
        views = [groups(app).get(work) for app in apps]
    except requests.RequestException:
        return False
    if any(g is None or len(g["members"]) != len(apps) or not g["connected"]
           or g["total"] != len(names) for g in views):
        return False
    owned = [name for g in views for name in g["owned"]]
    return sorted(owned) == sorted(names)


def polls(app: RunningAppliance) -> dict[str, int]:
    """Polls so far of each SNMP target this appliance has polled."""
    return {s["target"]: s["polls"] for s in status(app)["sources"] if s["source"] == "snmp"}


def worker_pid(app: RunningAppliance, source: str) -> int:
    """The pid of the appliance's forked agent for ``source`` (title ``appliance: poll-<source>
    [<data dir>]``, set by :mod:`appliance.workers`)."""
    wanted = f"appliance: poll-{source} [{app.data_dir}]"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        if cmdline == wanted:
            return int(entry.name)
    raise LookupError(f"no process titled {wanted!r}")
