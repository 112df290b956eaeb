"""The agents' garbage-collection policy: one collection per cycle, survivors frozen."""

from __future__ import annotations

import gc
import weakref

from appliance import gcpolicy


class Node:
    me: Node


def test_settle_frees_the_cycle_garbage_and_freezes_what_is_still_alive():
    was_enabled = gc.isenabled()
    try:
        gcpolicy.take_over()
        assert not gc.isenabled()
        garbage = Node()
        garbage.me = garbage
        gone = weakref.ref(garbage)
        del garbage
        kept = Node()
        kept.me = kept
        assert gone() is not None  # no automatic collection freed it
        gcpolicy.settle()
        assert gone() is None
        # The survivor left the collector's generations: later collections skip it.
        assert gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects())
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()
