"""Run a supervised program so that it ends when supervisord does.

supervisord stops its children when it is stopped, but a ``kill -9`` of supervisord (or its
crash) leaves them running: the next ``appliance run`` then meets an rrdcached that holds the
socket and a gunicorn that holds the port. Every program is therefore started as
``python -m appliance.lifeline PROGRAM ARGS...``: this asks the kernel to send SIGTERM when
the parent dies (``PR_SET_PDEATHSIG``, kept across ``execve``) and execs the program, which
costs no memory of its own. gunicorn's workers already exit when their master goes. The
appliance's supervisord runs our programs without this exec (it forks them:
:mod:`appliance.forking_supervisord`) and asks for the same with :func:`tie_to_parent`; the
command line stays, so the config also works with a plain supervisord.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> bool:
    """Ask the kernel for SIGTERM when the parent dies; False if it refused."""
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0


def tie_to_parent(program: str) -> bool:
    """Ask for SIGTERM when the parent dies; False if it died before the request took effect
    (the caller then ends at once)."""
    parent = os.getppid()
    if not die_with_parent():
        # A seccomp filter may refuse it; under systemd the unit's cgroup is the lifeline.
        print(f"lifeline: prctl failed ({os.strerror(ctypes.get_errno())}); starting "
              f"{program} without it", file=sys.stderr)
        return True
    return os.getppid() == parent


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: python -m appliance.lifeline PROGRAM [ARGS...]")
    if not tie_to_parent(argv[0]):
        sys.exit(0)
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
