"""Lifecycle events and polls written through the real store reach the instance's history.

The store (SQLite index + rrdcached) comes from tests/conftest.py; the pollster runs on the
libvirt test driver. Emitted results are written from the test thread, as the agent does.
"""

from __future__ import annotations

import json
import queue
import time
from pathlib import Path

from appliance.config import LibvirtSettings
from appliance.model import PollResult
from appliance.pollsters.libvirt import LibvirtPollster
from tests.test_libvirt import domain_uuid, write_node


def test_state_changes_become_history_revisions(tmp_path: Path, store):
    p = LibvirtPollster(LibvirtSettings(uri=write_node(tmp_path, 4)))
    emitted: queue.SimpleQueue[PollResult] = queue.SimpleQueue()
    p.start_events(emitted.put)
    uid = domain_uuid(0)

    def drain(count: int) -> None:
        for _ in range(count):  # one emitted result per event; the timeout guards a hang
            assert not store.write(emitted.get(timeout=10)).rejected

    try:
        assert not store.write(p.poll(p.targets(), time.monotonic() + 30)).rejected
        dom = p.connection.get().lookupByUUIDString(uid)
        dom.suspend()
        dom.resume()
        dom.destroy()
        drain(3)
        dom.undefine()
        drain(1)
    finally:
        p.close()
    history = store.index.history(uid)
    states = [(json.loads(r["attributes"])["state"], r["ended_at"] is not None) for r in history]
    assert states == [("running", False), ("paused", False), ("running", False),
                      ("shutoff", False), ("shutoff", True)]
    assert json.loads(history[-1]["attributes"])["last_event"] == "undefined"
