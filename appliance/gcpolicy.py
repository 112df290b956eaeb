"""When Python's cyclic garbage collector runs in an agent: once per poll cycle, at its end.

Measured on a steady 1000-domain libvirt poll (21k samples): automatic collections cost more
CPU than the store write itself. Each poll allocates ~100k objects that live until the
write is done, so the collector ran dozens of times per cycle, and each full collection
walked those objects plus every long-lived cache (20k metrics and their series state).
What a poll allocates is acyclic and freed by reference counting; the few cycles it leaves
can wait until the cycle ends. So an agent turns automatic collection off, and after each
cycle collects once and freezes the survivors, so that later collections only look at
objects younger than that. Garbage cycles then live at most one poll interval.

After that collection, :func:`trim` hands the heap's free pages back to the kernel: glibc
keeps freed memory in its arenas (one per thread that allocated), so the peak of one poll
would otherwise stay resident for the life of the process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc


def take_over() -> None:
    """Collect only when :func:`settle` is called (agents call it after every cycle)."""
    gc.disable()


def settle() -> None:
    """Free the cycles left so far, then keep the collector off everything still alive."""
    gc.collect()
    gc.freeze()
    trim()


_libc = ctypes.CDLL(ctypes.util.find_library("c"))


def trim() -> None:
    """Return free heap memory to the kernel (glibc ``malloc_trim``; ~1 ms on a 50 MB heap)."""
    _libc.malloc_trim(0)


#: glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8


def limit_arenas(count: int) -> None:
    """At most ``count`` malloc arenas in this process and the ones it forks.

    glibc gives each thread that allocates an arena of its own, up to eight per core, and
    freed memory stays in whichever arena held it; two are enough for an agent's poll
    thread beside its main one. The ``MALLOC_ARENA_MAX`` variable would do the same, but
    only in a process that execs: glibc reads it once, at its start.
    """
    _libc.mallopt(M_ARENA_MAX, count)


def keep_free_heap(limit: int) -> None:
    """Let up to ``limit`` bytes of freed heap stay mapped instead of going back at once.

    glibc returns the top of the heap once more than its trim threshold is free; left
    dynamic, that threshold settles near twice the largest block freed so far (a couple of
    MB for the API's arrays), so a request working with day-sized arrays (a megabyte per
    100 series) gave them back as it freed them and page-faulted them in again for the
    next: 19k faults, a fifth of an API worker's CPU, per 12-panel Grafana dashboard. Blocks
    up to half of ``limit`` come from the heap too (a fixed threshold stops glibc adjusting
    it), larger ones are mapped and unmapped as before. An explicit :func:`trim` still
    returns everything.
    """
    _libc.mallopt(M_TRIM_THRESHOLD, limit)
    _libc.mallopt(M_MMAP_THRESHOLD, limit // 2)
