"""``appliance snmp ...``: SNMP tools that are not the pollster itself.

- ``compile-mibs``: a site's vendor MIBs -> name tables the definitions can use;
- ``traps``: the trap receiver, supervised as ``snmp-traps``;
- ``check_definitions``: used by ``check-config`` so that an unknown MIB name is a config
  error before anything runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from appliance.config import Settings


@click.group("snmp")
def snmp() -> None:
    """SNMP tools: compile MIBs, receive traps."""


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
    from appliance.cli import load_settings
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
    """Receive SNMP traps from the configured targets into events (the snmp-traps program)."""
    from appliance.cli import load_settings
    from appliance.pollsters.snmp.traps import serve

    settings = load_settings(config_path, data_dir)
    problem = check_definitions(settings)
    if problem:
        click.echo(f"appliance: {problem}", err=True)
        sys.exit(2)
    serve(settings)


def programs(settings: Settings, common: list[str]) -> list:
    """The trap receiver's supervisord program: when SNMP and traps are enabled and there is
    a target to accept traps from (registered in ``supervise.EXTRA_PROGRAMS``)."""
    from appliance.supervise import Program

    snmp_settings = settings.pollsters.snmp
    if not (snmp_settings.enabled and snmp_settings.traps.enabled and snmp_settings.targets):
        return []
    argv = [sys.executable, "-m", "appliance", "snmp", "traps", *common]
    return [Program("snmp-traps", argv, 30)]


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
