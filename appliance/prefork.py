"""What a parent does just before it forks long-lived children, so that they copy less of it.

A forked child shares its parent's memory until it writes to a page; the kernel then copies
that page (4 KiB) for the child alone. On CPython 3.11 every object a child uses is written
(its reference count), so some copying is the price of forking; three causes were not, and
measured on the workers' parent (children's own memory, USS, in benchmarks/README.md):

- **The collector.** A child's first collection walked every inherited object. The
  survivors are frozen (``gc.freeze()``), so the children's collector never touches them.
- **Holes in the parent's heap.** glibc serves a child's small allocations from the free
  chunks the parent's imports left behind (~600 chunks, 0.8 MB, scattered over a 15 MB
  heap), and each block written there copies the shared page around it: opening the index
  cost a child 0.9 MB more than it does now. :func:`fill_heap_holes` takes those chunks in
  the parent and keeps them (half a MB, shared), so that what a child allocates goes to
  fresh pages at the top of the heap, holding only what it needs.
- **The first name lookup.** glibc reads ``nsswitch.conf`` and sets up its lookup state at
  the first ``getaddrinfo``; done in each child (the host pollster's ``getfqdn``) it cost
  2 MB apiece. One local lookup (``localhost``, from ``/etc/hosts``: no DNS) in the parent
  leaves that state for every child to share.

Another thread in the parent (OpenBLAS starts one when numpy is imported) changes nothing
here: glibc's fork holds its allocator's locks, and such a thread allocates from an arena of
its own, not from the main heap filled here.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import socket

#: Block sizes asked for, largest first: each is asked for until glibc serves it from the
#: top of the heap (no free chunk of that size is left), then the next smaller. Every size
#: of glibc's per-thread cache (chunks up to 1040 bytes, 16 apart) is among them: a block
#: cached there counts as used, yet a child's first allocations of that size would get it.
_SIZES = (4096, 2048, *range(1024, 8, -16))
#: A bound on the blocks taken, whatever the heap looks like (they are never freed).
_MAX_BLOCKS = 50_000
#: The blocks taken, kept for the life of the process (and of its children).
_held: list[int] = []


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (malloc.h, glibc 2.33 and later)."""

    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


_libc = ctypes.CDLL("libc.so.6")
_libc.malloc.restype, _libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
_libc.free.restype, _libc.free.argtypes = None, [ctypes.c_void_p]
_libc.mallinfo2.restype = _MallInfo2


def free_heap() -> tuple[int, int]:
    """(bytes in free chunks inside the heap, bytes free at its top) of this process."""
    info = _libc.mallinfo2()
    return info.fordblks - info.keepcost, info.keepcost


def fill_heap_holes() -> int:
    """Take every free chunk inside the heap (not its top); return how many blocks.

    A block served from a free chunk leaves the top of the heap (``keepcost``) as it was;
    the first one that moves it came from the top, so it is given back and the next
    smaller size is tried.
    """
    taken = 0
    for size in _SIZES:
        while taken < _MAX_BLOCKS:
            top = free_heap()[1]
            block = _libc.malloc(size)
            if not block:
                return taken
            if free_heap()[1] != top:
                _libc.free(block)
                break
            _held.append(block)
            taken += 1
    return taken


def warm_lookups() -> None:
    """Set up glibc's name lookup here, once, rather than in every child."""
    with contextlib.suppress(OSError):
        socket.getaddrinfo("localhost", None)


def prepare() -> None:
    """Call last before forking the children: nothing the parent does after it is shared."""
    warm_lookups()
    gc.collect()
    fill_heap_holes()
    gc.freeze()
