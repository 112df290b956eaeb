"""What each process of the appliance runs, and the imports done for all of them at once.

``appliance run`` calls :func:`preload` before supervisord starts in its process
(:mod:`appliance.forking_supervisord`): every module any process will run is imported there
and then, once, and its pages are shared by all of them. supervisord's two programs then
run in the children it forks: :func:`run_preloaded` starts ``workers`` (:func:`supervise`:
the API, an agent per source, the evaluator, the SNMP programs, each from :func:`job`) and
``rrdcached`` (:func:`start_rrdcached`) with what that process already holds. The command
line (``appliance workers``, ``appliance rrdcached``) runs the same functions after parsing
its options, for a plain supervisord that execs its programs.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import NoReturn

from appliance.config import Settings
from appliance.pollsters import SOURCES

log = logging.getLogger(__name__)

#: What a forked process runs, by its name (:func:`appliance.supervise.forked`).
Jobs = dict[str, Callable[[], object]]


def preload(settings: Settings, config_path: Path | None) -> Jobs:
    """Import what every forked process will run, as the environment supervisord gives the
    ``workers`` program has it (the API's app reads its config from there at import), and
    return what each of them runs."""
    from appliance import gcpolicy, supervise
    from appliance import workers as forked

    gcpolicy.limit_arenas(2)
    os.environ.update(supervise.program_env(settings, config_path))
    jobs = {name: job(settings, name) for name in supervise.forked(settings)}
    forked.freeze_imports()
    return jobs


def run_preloaded(settings: Settings, jobs: Jobs, args: list[str]) -> None:
    """In a child supervisord forked for the command line ``args``: run it if it is one of
    our two programs (and never return), else return.

    They take what this process already holds, the settings ``appliance run`` read (their
    command line names the same files: supervisord.conf was rendered from them) and the
    jobs :func:`preload` prepared, rather than parsing the command line and the config
    again: in a forked child those two steps copied 3.8 MB of pages it shared with
    supervisord, which the children of ``workers`` then inherited.
    """
    if args[:1] == ["workers"]:
        supervise(settings, jobs)
    if args[:1] == ["rrdcached"]:
        start_rrdcached(settings)


def supervise(settings: Settings, jobs: Jobs) -> NoReturn:
    """The ``workers`` program: fork every job, fork again whichever ends."""
    from appliance import workers as forked

    forked.freeze_imports()
    sys.exit(forked.supervise([forked.Worker(name, main) for name, main in jobs.items()],
                              str(settings.data_dir)))


def start_rrdcached(settings: Settings) -> NoReturn:
    """The ``rrdcached`` program: replay the write-ahead log, then exec rrdcached."""
    from appliance.storage.daemon import prepare, rrdcached_argv

    try:
        prepare(settings)
    except Exception:  # a replay problem is never a reason to stay down
        log.exception("preparing rrdcached's start failed; starting it anyway")
    argv = rrdcached_argv(settings)
    os.execvp(argv[0], argv)


def build_pollster(source: str, settings: Settings):
    """The pollster of ``source`` as its agent runs it (SNMP: with the index's runtime
    targets too)."""
    from appliance import pollsters

    pollster = pollsters.build(source, settings)
    if source == "snmp":
        from appliance.snmp_programs import attach_runtime_targets

        attach_runtime_targets(pollster, settings)
    return pollster


def _agent(settings: Settings, source: str, receive_traps: bool = False) -> None:
    """What a ``poll-<source>`` worker runs, once forked (the SNMP agent with the trap
    receiver on a thread beside it: :func:`appliance.supervise.traps_in_agent`)."""
    from appliance.agent import serve

    if receive_traps:
        from appliance.snmp_programs import receive_traps_beside

        receive_traps_beside(settings)
    serve(settings, build_pollster(source, settings))


def job(settings: Settings, name: str) -> Callable[[], object]:
    """What the forked process ``name`` runs; its modules are imported here, before any
    fork (by :func:`preload`), so that every process shares them."""
    if name == "api":
        from appliance.web.api import server

        return partial(server.serve, settings, server.preload(settings))
    if name == "poll-snmp" or name.startswith("snmp-"):
        from appliance.pollsters import snmp
        from appliance.pollsters.snmp.definitions import DefinitionError

        try:
            snmp.groups(settings.pollsters.snmp)  # the definitions, read once for the three
        except (DefinitionError, ValueError, OSError):
            # A site's broken definition file must not stop the parent (and the API with
            # it): each SNMP process meets the error itself, logs it and ends alone.
            log.warning("snmp definitions unreadable; the SNMP processes will say why")
    from appliance.supervise import traps_in_agent

    traps_beside_agent = name == "poll-snmp" and traps_in_agent(settings)
    if name == "snmp-traps" or traps_beside_agent:
        from appliance.pollsters.snmp import traps, traps_v2c  # noqa: F401 (shared pages)

        if traps.needs_pysnmp(settings.pollsters.snmp.targets):
            # pysnmp (~31 MB) only for a configured v3 target: the child picks its receiver
            # itself, and imports pysnmp then if a runtime target is v3.
            from appliance.pollsters.snmp import traps_pysnmp  # noqa: F401
    if name.startswith("poll-"):
        from appliance import agent, publishers, store  # noqa: F401 (shared pages)

        source = name.removeprefix("poll-")
        SOURCES[source]()  # the pollster's module
        if source == "snmp":
            from appliance import snmp_programs  # noqa: F401 (the index's runtime targets)
        return partial(_agent, settings, source, receive_traps=traps_beside_agent)
    if name == "alarm-evaluator":
        from appliance.alarms import process

        return partial(process.main, settings)
    from appliance import snmp_programs

    if name == "snmp-traps":
        return partial(snmp_programs.receive_traps, settings)
    if name == "snmp-discovery":
        return partial(snmp_programs.discover_forever, settings,
                       settings.pollsters.snmp.discovery)
    raise ValueError(f"no forked process is named {name!r}")
