"""What the workers' parent does before forking (appliance/prefork.py), on a real glibc heap."""

from __future__ import annotations

import json
import subprocess
import sys

HOLES = """
import json
from appliance import prefork
blocks = [prefork._libc.malloc(200) for _ in range(4000)]
for block in blocks[::2]:
    prefork._libc.free(block)          # 2000 holes of 208 bytes amid blocks still in use
holes_before = prefork.free_heap()[0]
taken = prefork.fill_heap_holes()
holes_after = prefork.free_heap()[0]
from_top = 0
for _ in range(100):  # a child's next allocations
    top = prefork.free_heap()[1]
    prefork._libc.malloc(200)
    from_top += prefork.free_heap()[1] != top
print(json.dumps({"holes_before": holes_before, "taken": taken, "holes_after": holes_after,
                  "from_top": from_top}))
"""


def test_filled_heap_serves_the_next_blocks_from_its_top():
    """Holes inside the heap are taken, so what a child allocates next lands on fresh pages
    at the top of the heap instead of on a page it shares with its parent."""
    out = subprocess.run([sys.executable, "-c", HOLES], capture_output=True, text=True,
                         check=True, timeout=60)
    got = json.loads(out.stdout)
    assert got["holes_before"] >= 2000 * 200
    assert got["taken"] >= 2000
    assert got["holes_after"] < got["holes_before"] // 100
    # Without the fill, every one of them would reuse a hole (see the first assertion).
    assert got["from_top"] >= 90


def test_prepare_leaves_the_collector_off_what_exists():
    """After prepare() the survivors are frozen: the children's collector never walks them."""
    script = ("import gc, json; from appliance import prefork; gc.unfreeze(); "
              "x = [[] for _ in range(1000)]; prefork.prepare(); "
              "print(json.dumps({'frozen': gc.get_freeze_count(), 'young': gc.get_count()[0]}))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=60)
    got = json.loads(out.stdout)
    assert got["frozen"] >= 1000
    assert got["young"] < 100
