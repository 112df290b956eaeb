"""``appliance snmp ...``: SNMP tools that are not the pollster itself.

- ``compile-mibs``: a site's vendor MIBs -> name tables the definitions can use;
- ``traps``: the trap receiver by hand (in the appliance it runs in the SNMP agent's
  process, or as ``snmp-traps`` when discovery alone finds the targets);
- ``discover``: one sweep, or the ``snmp-discovery`` program's loop;
- ``check_definitions``: used by ``check-config`` so that an unknown MIB name is a config
  error before anything runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from appliance.clisettings import load_settings
from appliance.config import Settings


@click.group("snmp")
def snmp() -> None:
    """SNMP tools: compile MIBs, receive traps, discover agents."""


@snmp.command("compile-mibs")
@click.argument(
    "sources", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Config file; its pollsters.snmp.mibs_dir is the default --out.",
)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Where the MODULE.json tables go (default: pollsters.snmp.mibs_dir).",
)
@click.option(
    "--shipped", is_flag=True,
    help="Rebuild the tables shipped in the package from Debian's MIB packages (developers).",
)
def compile_mibs(
    sources: tuple[Path, ...], config_path: Path | None, out: Path | None, shipped: bool
) -> None:
    """Compile every MIB module in SOURCES (directories) into name tables, with pysmi.

    Imports are searched in SOURCES, then in net-snmp's and erlang-snmp's MIB directories.
    Nothing is downloaded. Point pollsters.snmp.mibs_dir at --out and restart the agent.
    """
    from appliance.pollsters.snmp import mibcompile

    if shipped:
        tables = mibcompile.shipped_tables()
        out = mibcompile.SHIPPED_DIR
    else:
        if not sources:
            raise click.UsageError("give at least one directory of MIB files (or --shipped)")
        if out is None:
            out = load_settings(config_path, None).pollsters.snmp.mibs_dir
        if out is None:
            raise click.UsageError("no --out and no pollsters.snmp.mibs_dir in the config")
        found: dict[str, Path] = {}
        for directory in sources:
            found.update(mibcompile.modules_in(directory))
        if not found:
            raise click.UsageError(f"no MIB module (NAME DEFINITIONS ::= BEGIN) in {sources}")
        try:
            tables = mibcompile.compile_sources(sorted(found), list(sources))
        except mibcompile.MibCompileError as exc:
            click.echo(f"appliance: {exc}", err=True)
            sys.exit(1)
    for path in mibcompile.write_tables(tables, out):
        click.echo(f"{path}: {len(tables[path.stem])} names")


@snmp.command("traps")
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="YAML config file (default: built-in defaults).",
)
@click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Where the index is (overrides data_dir in the config).",
)
def traps(config_path: Path | None, data_dir: Path | None) -> None:
    """Receive SNMP traps from the configured targets into events, in the foreground."""
    from appliance.snmp_programs import receive_traps

    settings = load_settings(config_path, data_dir)
    problem = check_definitions(settings)
    if problem:
        click.echo(f"appliance: {problem}", err=True)
        sys.exit(2)
    while receive_traps(settings):  # a v3 target appeared: again, now on pysnmp
        pass


@snmp.command("discover")
@click.argument("networks", nargs=-1)
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="YAML config file: credentials, rate and timeouts (pollsters.snmp.discovery).",
)
@click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Where the index is (overrides data_dir in the config).",
)
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Agent UDP port.")
@click.option("--add", is_flag=True, help="Add what answered as runtime targets.")
@click.option("--loop", is_flag=True,
              help="Sweep the configured networks every interval, adding what answers "
                   "(the snmp-discovery program).")
def discover(networks: tuple[str, ...], config_path: Path | None, data_dir: Path | None,
             port: int | None, add: bool, loop: bool) -> None:
    """One sweep of NETWORKS (CIDR; default: pollsters.snmp.discovery.networks), printing
    every agent that answered and the definition groups its sysObjectID/sysDescr pick."""
    from pydantic import ValidationError

    from appliance import snmp_programs

    settings = load_settings(config_path, data_dir)
    cfg = settings.pollsters.snmp.discovery
    try:
        cfg = cfg.model_validate(
            cfg.model_dump() | ({"networks": list(networks)} if networks else {})
            | ({"port": port} if port else {})
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'networks'}: {e['msg']}"
                             for e in exc.errors())
        raise click.UsageError(problems) from None
    if not cfg.networks:
        raise click.UsageError("no NETWORKS given and none in pollsters.snmp.discovery")
    if loop:
        snmp_programs.discover_forever(settings, cfg)
        return
    result = snmp_programs.sweep_once(settings, cfg)
    for found in result.found:
        t = found.target
        who = "community" if t.version == "2c" else f"v3 user {t.user}"
        click.echo(f"{t.host}:{t.port}  {found.sys_name or '-'}  {found.sys_object_id}  "
                   f"[{who}]  groups: {', '.join(found.groups)}")
        click.echo(f"    {found.sys_descr[:120]}")
    click.echo(f"{len(result.found)} answered, {result.silent} silent, {result.probed} probed "
               f"in {result.seconds:.1f}s")
    if add:
        added = snmp_programs.record(settings, result)
        click.echo(f"added {len(added)} runtime targets: {', '.join(added) or '-'}")


def check_definitions(settings: Settings) -> str | None:
    """The SNMP definitions problem of ``settings`` (unknown MIB names included), if any."""
    from appliance.pollsters.snmp.definitions import DefinitionError, load_groups
    from appliance.pollsters.snmp.mibnames import MibNames

    snmp_settings = settings.pollsters.snmp
    if not snmp_settings.enabled:
        return None
    try:
        mibs = MibNames.load(snmp_settings.mibs_dir)
    except ValueError as exc:
        return f"pollsters.snmp.mibs_dir: {exc}"
    try:
        load_groups(snmp_settings.definitions_dir, mibs)
    except DefinitionError as exc:
        return str(exc)
    return None
