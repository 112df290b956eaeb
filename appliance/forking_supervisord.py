"""supervisord inside the appliance's preloaded interpreter, forking its programs instead of
exec'ing them.

Why: supervisord used to be an interpreter of its own (``python -m supervisor.supervisord``):
13.7 MB that only it held, for the Python runtime and supervisor's modules, beside the
``workers`` interpreter that imports every module of the appliance once for the processes it
forks (benchmarks/README.md, footprint.py). Here ``appliance run`` imports all of it, and
supervisor too, then runs supervisord's own main loop in the same process, unchanged but
for one step: where it would exec one of the appliance's programs (``python -m
appliance.lifeline python -m appliance <command> ...``, the command line in the rendered
supervisord.conf, which stays as it was), the child it has just forked runs that command
itself. Every page the imports filled is then shared by supervisord and all the processes
below it. Anything else (a program that is not ours) is exec'd as before.

What supervisord does is otherwise unchanged: the config it reads, ``supervisorctl``, the
restarts, the process groups, the pipes that carry each child's output, the environment
and working directory it gives each child. The forked child does what the lifeline would
have done (SIGTERM when supervisord dies), takes the environment supervisord prepared,
puts back the default signal handlers that supervisord's own had replaced, keeps its
collector off what supervisord held, and ends with ``os._exit`` so that nothing of
supervisord's runs in it again.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from supervisor import supervisord
from supervisor.options import ServerOptions
from supervisor.states import SupervisorStates

from appliance.lifeline import tie_to_parent

#: The signals supervisord handles itself; a forked program starts with their defaults.
_SUPERVISOR_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP,
                       signal.SIGCHLD, signal.SIGUSR2)
#: How a program of ours starts in supervisord.conf (after the interpreter's path).
_LIFELINE = ["-m", "appliance.lifeline"]
_APPLIANCE = ["-m", "appliance"]

#: Runs ``appliance <args...>`` in this process (the command line's entry point).
Command = Callable[[list[str]], object]


def appliance_command(argv: list[str]) -> list[str] | None:
    """The ``appliance`` command's arguments if ``argv`` runs one of ours through the
    lifeline with this interpreter, else None."""
    python = sys.executable
    head = [python, *_LIFELINE, python, *_APPLIANCE]
    if argv[: len(head)] == head:
        return argv[len(head):]
    return None


def run_forked(run: Command, command: list[str], env: dict[str, str]) -> NoReturn:
    """In a child supervisord forked: ``run(command)`` here, then exit."""
    code = 1
    # What supervisord held is never collected here: a garbage cycle of its own holding a
    # file would close that descriptor number, which this process may be using by then.
    gc.freeze()
    try:
        os.environ.clear()
        os.environ.update(env)
        for sig in _SUPERVISOR_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        if not tie_to_parent("appliance " + " ".join(command[:1])):
            code = 0
            return
        run(command)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class _Options(ServerOptions):
    """supervisord's options, but a program of ours runs in the child instead of an exec."""

    def __init__(self, run: Command):
        super().__init__()
        self.run_appliance = run

    def execve(self, filename: str, argv: list[str], env: dict[str, str]) -> None:
        command = appliance_command(argv)
        if command is None:
            super().execve(filename, argv, env)
            return
        run_forked(self.run_appliance, command, env)


def serve(conf: Path, run: Command) -> NoReturn:
    """supervisord's ``main`` with our options: run until stopped, start over on SIGHUP.
    ``run`` runs an ``appliance`` command in a forked child."""
    first = True
    while True:
        options = _Options(run)
        options.realize(["-c", str(conf)], doc=supervisord.__doc__)
        options.first, options.test = first, False
        supervisord.go(options)
        options.close_httpservers()
        options.close_logger()
        first = False
        if options.mood < SupervisorStates.RESTARTING:
            sys.exit(0)
