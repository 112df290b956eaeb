"""The supervisord config that ``appliance run`` renders into the data dir.

One supervisor runs two programs: rrdcached first, then ``workers`` (:mod:`appliance.workers`),
which forks the rest, each a process of its own that it forks again if it ends: the API's
gunicorn arbiter (which forks its own workers), an agent per enabled source (the SNMP
agent's with the trap receiver on a thread), the alarm evaluator, and the SNMP discovery
loop when configured (:func:`forked`). One parent rather than a program each, because each
interpreter started on its own paid 35-50 MB for the same modules (benchmarks/README.md,
footprint.py). The config is an ordinary supervisord config; supervisord runs in the
process that imported every module, and forks our programs rather than exec them
(:mod:`appliance.forking_supervisord`). Children log to supervisord's stdout, so under
systemd everything lands in the journal and under ``make run`` in the terminal.
"""

from __future__ import annotations

import configparser
import io
import os
import shlex
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from appliance.config import Settings


@dataclass(frozen=True)
class Program:
    name: str
    argv: list[str]
    priority: int
    env: dict[str, str] | None = None
    stopsignal: str = "TERM"


def _appliance(*args: str) -> list[str]:
    return [sys.executable, "-m", "appliance", *args]


def programs(settings: Settings, config_path: Path | None) -> list[Program]:
    """Every process the appliance runs for this config, in start order."""
    common = ["--data-dir", str(settings.data_dir)]
    if config_path is not None:
        common += ["--config", str(config_path)]
    return [
        Program("rrdcached", _appliance("rrdcached", *common), 10),
        Program("workers", _appliance("workers", *common), 20,
                program_env(settings, config_path)),
    ]


def program_env(settings: Settings, config_path: Path | None) -> dict[str, str]:
    """The environment of the ``workers`` program: where the API's app finds its config."""
    env = {"APPLIANCE_DATA_DIR": str(settings.data_dir)}
    if config_path is not None:
        env["APPLIANCE_CONFIG"] = str(config_path)
    return env


def traps_in_agent(settings: Settings) -> bool:
    """Whether the SNMP agent's process receives the traps too, on a thread of its own.

    The trap receiver belongs to the SNMP source, so it lives in that source's process when
    there is one (configured targets): a process of its own cost 5 MB more (issue 14), and
    what isolation asks, that a crash in one source's code restarts that source only, holds
    as before. Without configured targets (discovery alone finds them) it is a process of
    its own, ``snmp-traps``.
    """
    return "snmp" in settings.enabled_sources() and settings.pollsters.snmp.traps.enabled


def forked(settings: Settings) -> list[str]:
    """What the ``workers`` parent forks for this config, in fork order: the API's gunicorn,
    an agent per enabled source, the alarm evaluator, and the SNMP trap receiver (unless
    the SNMP agent receives the traps: :func:`traps_in_agent`) and discovery loop when
    configured (:func:`appliance.cli.workers` runs them)."""
    names = ["api", *(f"poll-{source}" for source in settings.enabled_sources())]
    if settings.alarms.enabled:
        names.append("alarm-evaluator")
    snmp = settings.pollsters.snmp
    # The trap receiver when there are targets to accept traps from (configured: in the
    # agent's process, or found by discovery); the discovery loop when there are networks
    # to sweep.
    if (snmp.enabled and snmp.traps.enabled and snmp.discovery.networks
            and not traps_in_agent(settings)):
        names.append("snmp-traps")
    if snmp.enabled and snmp.discovery.networks:
        names.append("snmp-discovery")
    return names


def stdout_is_socket() -> bool:
    """Whether our stdout is a socket (systemd's journal stream, ``StandardOutput=journal``).

    supervisord reopens ``/dev/stdout`` for every child, and reopening a socket fails with
    ENXIO, so every program would die at start under systemd.
    """
    try:
        return stat.S_ISSOCK(os.fstat(1).st_mode)
    except OSError:
        return False


def render(settings: Settings, config_path: Path | None, to_syslog: bool = False) -> str:
    """The supervisord config; ``to_syslog`` sends children's output to syslog (the journal
    under systemd) instead of supervisord's stdout."""
    run, log = settings.run_dir, settings.log_dir
    cp = configparser.RawConfigParser()
    cp["supervisord"] = {
        "nodaemon": "true",
        "logfile": str(log / "supervisord.log"),
        "logfile_maxbytes": "5MB",
        "logfile_backups": "2",
        "pidfile": str(run / "supervisord.pid"),
        "childlogdir": str(log),
        "directory": str(settings.data_dir),
        "identifier": "appliance",
    }
    cp["unix_http_server"] = {"file": str(settings.supervisor_socket), "chmod": "0700"}
    cp["rpcinterface:supervisor"] = {
        "supervisor.rpcinterface_factory": "supervisor.rpcinterface:make_main_rpcinterface"
    }
    cp["supervisorctl"] = {"serverurl": f"unix://{settings.supervisor_socket}"}
    for prog in programs(settings, config_path):
        section = {
            "command": shlex.join([sys.executable, "-m", "appliance.lifeline", *prog.argv]),
            "priority": str(prog.priority),
            "autostart": "true",
            "autorestart": "true",
            "startsecs": "1",
            "startretries": "1000",
            "stopsignal": prog.stopsignal,
            "stopwaitsecs": "8",
            "stopasgroup": "true",
            "killasgroup": "true",
            "redirect_stderr": "true",
        }
        if to_syslog:
            section.update(stdout_logfile="NONE", stdout_syslog="true")
        else:
            section.update(stdout_logfile="/dev/stdout", stdout_logfile_maxbytes="0")
        if prog.env:
            section["environment"] = ",".join(f'{k}="{v}"' for k, v in prog.env.items())
        cp[f"program:{prog.name}"] = section
    buf = io.StringIO()
    cp.write(buf)
    return buf.getvalue()

