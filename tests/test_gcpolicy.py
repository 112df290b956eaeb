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


def test_freed_heap_up_to_the_limit_stays_mapped():
    """A block freed after keep_free_heap() is reused without faulting its pages in again.

    Run in a child: the setting is for the API's workers, not for this test process.
    """
    import subprocess
    import sys

    code = """
import resource
import numpy as np
from appliance import gcpolicy
gcpolicy.keep_free_heap(8 * 2**20)
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    a = np.ones(300_000); b = np.ones(300_000); del a, b  # 2.4 MB each, freed
before = faults()
for _ in range(20):
    a = np.ones(300_000); b = np.ones(300_000); del a, b
print(faults() - before)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    # Without the setting each round trips 2 x 586 pages through the kernel (~23k faults).
    assert int(out.stdout) < 500


def test_an_idle_api_worker_trims_the_heap_it_kept():
    """The freed heap a worker keeps for its next query (keep_free_heap) goes back to the
    kernel once no request came for serving.IDLE_TRIM seconds: a worker's own thread trims
    it. Run in a child, as a worker runs: the setting, then a request's freed arrays."""
    import subprocess
    import sys

    code = """
import os, time
import numpy as np
from appliance import gcpolicy
from appliance.web.api import serving

def anonymous_mb():
    return serving.anonymous_bytes() / 2**20

gcpolicy.keep_free_heap(serving.TRIM_AFTER_GROWTH)
blocks = [np.ones(100_000) for _ in range(8)]  # a request's arrays: 6.4 MB of heap
del blocks
serving._last_request, serving._trimmed = time.monotonic(), False  # as post_request leaves it
kept = anonymous_mb()
import threading
threading.Thread(target=serving._when_idle, args=(None, 0), daemon=True).start()
deadline = time.monotonic() + 30
while anonymous_mb() > kept - 4 and time.monotonic() < deadline:
    time.sleep(0.1)
print(kept, anonymous_mb())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    kept, later = map(float, out.stdout.split())
    assert later < kept - 4, (kept, later)  # the 6.4 MB went back, the process lives on
