"""The ``appliance`` command: run | poll | check-config | token | rrdcached | workers."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import click

from appliance import config as config_mod
from appliance.clisettings import config_option, data_dir_option, load_settings, setup_logging
from appliance.config import ConfigError, Settings
from appliance.pollsters import SOURCES
from appliance.snmp_cli import check_definitions
from appliance.snmp_cli import snmp as snmp_group

log = logging.getLogger("appliance")

@click.group()
@click.version_option(package_name="appliance")
def main() -> None:
    """Single-node telemetry appliance."""


@main.command("check-config")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--quiet", "-q", is_flag=True, help="Only validate; print nothing if valid.")
def check_config(file: Path, quiet: bool) -> None:
    """Validate FILE and print the effective config (secrets masked); exit 2 if invalid."""
    try:
        settings = config_mod.load(file)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    problem = check_definitions(settings)
    if problem:
        click.echo(f"{file}: {problem}", err=True)
        sys.exit(2)
    if quiet:
        return
    import yaml

    click.echo(yaml.safe_dump(config_mod.effective(settings), sort_keys=False), nl=False)


@main.command()
@config_option
@data_dir_option
def run(config_path: Path | None, data_dir: Path | None) -> None:
    """Run every process under supervisord in the foreground until SIGTERM or Ctrl-C."""
    from appliance import forking_supervisord, programs, supervise, tls, tokens
    from appliance.index.schema import SchemaTooNew
    from appliance.store import Store

    if config_path is not None:
        config_path = config_path.resolve()
    settings = load_settings(config_path, data_dir)
    for d in (settings.data_dir, settings.run_dir, settings.log_dir, settings.rrd_dir):
        d.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(settings.run_dir / "appliance.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(lock_fd, 32, 0).decode(errors="replace").strip() or "?"
        click.echo(
            f"appliance: another appliance is already running on {settings.data_dir} "
            f"(pid {holder}); stop it first",
            err=True,
        )
        sys.exit(1)
    os.ftruncate(lock_fd, 0)
    os.pwrite(lock_fd, f"{os.getpid()}\n".encode(), 0)
    if shutil.which("rrdcached") is None:
        click.echo("appliance: rrdcached is not installed (apt-get install rrdcached)", err=True)
        sys.exit(1)
    try:
        store = Store(settings)  # creates the index, runs migrations, seeds policies
    except SchemaTooNew as exc:
        click.echo(f"appliance: {settings.data_dir}: {exc}", err=True)
        sys.exit(1)
    token = tokens.ensure_admin_token(settings, store.index)
    store.close()
    if token:
        click.echo(
            f"appliance: generated an admin token into {tokens.admin_token_path(settings)} "
            f"(print it with: appliance token --data-dir {settings.data_dir})",
            err=True,
        )
    if tls.ensure_auto_certificate(settings):
        cert = tls.files(settings)[0]  # type: ignore[index]
        click.echo(f"appliance: generated a self-signed certificate into {cert}, SHA-256 "
                   f"fingerprint {tls.fingerprint(cert)}", err=True)
    conf = settings.run_dir / "supervisord.conf"
    conf.write_text(supervise.render(settings, config_path, supervise.stdout_is_socket()))
    click.echo(
        f"appliance: API on {tls.scheme(settings)}://{settings.api.listen}/ , data in "
        f"{settings.data_dir}",
        err=True,
    )
    # supervisord runs in this process, which holds the lock while it runs; what its
    # programs will run is imported first, so that they share it (forking_supervisord.py).
    jobs = programs.preload(settings, config_path)
    sys.stdout.flush()
    sys.stderr.flush()

    def run_program(args: list[str]) -> None:
        programs.run_preloaded(settings, jobs, args)  # ours: runs them, never returns
        main(args=args, prog_name="appliance")

    forking_supervisord.serve(conf, run_program)


@main.command()
@config_option
@data_dir_option
@click.option("--source", required=True, type=click.Choice(list(SOURCES)))
@click.option("--once", is_flag=True, help="Poll once, print what was collected, write nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --once: print JSON.")
@click.option("--target", "target_names", multiple=True, help="Only these targets (SNMP).")
def poll(
    config_path: Path | None,
    data_dir: Path | None,
    source: str,
    once: bool,
    as_json: bool,
    target_names: tuple[str, ...],
) -> None:
    """Run the agent of one source kind (or, with --once, show one poll)."""
    from appliance.agent import serve
    from appliance.programs import build_pollster

    settings = load_settings(config_path, data_dir)
    if source == "snmp":
        problem = check_definitions(settings)
        if problem:
            click.echo(f"appliance: {problem}", err=True)
            sys.exit(2)
    if not once:
        serve(settings, build_pollster(source, settings))
    pollster = build_pollster(source, settings)
    interval = getattr(settings.pollsters, source).interval
    targets = list(target_names) or _my_share(settings, source, pollster.targets())
    unknown = set(targets) - set(pollster.targets())
    if unknown:
        click.echo(f"appliance: unknown target(s): {', '.join(sorted(unknown))}", err=True)
        sys.exit(2)
    try:
        result = pollster.poll(targets, time.monotonic() + interval * 0.8)
    finally:
        pollster.close()
    _print_poll(result, as_json)
    sys.exit(0 if all(r.ok for r in result.reports) else 1)


@main.command(hidden=True)
@config_option
@data_dir_option
def workers(config_path: Path | None, data_dir: Path | None) -> None:
    """Fork the API, an agent per enabled source, the alarm evaluator and the SNMP programs
    from this preloaded process; fork again whichever ends (run by supervisord)."""
    from appliance import programs
    from appliance.supervise import forked

    settings = load_settings(config_path, data_dir)
    programs.supervise(settings, {name: programs.job(settings, name)
                                  for name in forked(settings)})


def _my_share(settings: Settings, source: str, targets) -> list[str]:
    """All targets, or on a partitioned appliance the share its running agent holds now.

    ``--once`` does not join the group itself: a member that comes and goes would move
    targets between the running appliances.
    """
    from appliance import coordination, runstate

    if source not in coordination.SHARED or settings.coordination.backend_url is None:
        return list(targets)
    states = [s for s in runstate.read_all(settings.run_dir, "coordination")
              if s.get("work") == source]
    if not states:
        click.echo(f"# partitioned ({source}): no running agent has joined its group yet; "
                   f"polling every target", err=True)
        return list(targets)
    state = states[0]
    owned = [t for t in targets if t in set(state["owned"])]
    click.echo(f"# partitioned: group {state['group']} via {state['backend']}, members "
               f"{', '.join(state['members'])}; {state['member']} polls {len(owned)} of "
               f"{len(targets)} targets: {', '.join(owned)}", err=True)
    return owned


def _print_poll(result, as_json: bool) -> None:
    if as_json:
        click.echo(
            json.dumps(
                {
                    "samples": [
                        {
                            "resource_id": s.resource.id,
                            "resource_type": s.resource.type,
                            "original_resource_id": s.resource.original_resource_id,
                            "metric": s.metric_name,
                            "unit": s.unit,
                            "kind": s.kind.value,
                            "value": s.value,
                            "timestamp": s.timestamp,
                            "attributes": s.resource.attributes,
                        }
                        for s in result.samples
                    ],
                    "resources": [
                        {"id": r.id, "type": r.type, "ended_at": r.ended_at,
                         "attributes": r.attributes}
                        for r in result.resources
                    ],
                    "reports": [
                        {"source": r.source, "target": r.target, "duration": r.duration,
                         "samples": r.samples, "error": r.error, "detail": r.detail}
                        for r in result.reports
                    ],
                },
                indent=2,
                default=str,
            )
        )
        return
    rows = [
        (s.resource.type, s.resource.original_resource_id, s.metric_name, f"{s.value:g}", s.unit)
        for s in result.samples
    ]
    headers = ("TYPE", "RESOURCE", "METRIC", "VALUE", "UNIT")
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    for row in [headers, *rows]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    for r in result.reports:
        extra = " ".join(f"{k}={v}" for k, v in r.detail.items())
        status = "ok" if r.ok else f"ERROR: {r.error}"
        click.echo(
            f"# {r.source}/{r.target}: {r.samples} samples in {r.duration * 1000:.1f} ms, "
            f"{status} {extra}".rstrip()
        )


@main.group(invoke_without_command=True)
@config_option
@data_dir_option
@click.pass_context
def token(ctx: click.Context, config_path: Path | None, data_dir: Path | None) -> None:
    """Print the generated admin token, or manage tokens (create | list | revoke)."""
    from appliance import tokens

    settings = load_settings(config_path, data_dir)
    ctx.obj = settings
    if ctx.invoked_subcommand is None:
        path = tokens.admin_token_path(settings)
        if not path.exists():
            click.echo(f"appliance: no generated admin token in {settings.data_dir}", err=True)
            sys.exit(1)
        click.echo(path.read_text().strip())


@main.command("tls-fingerprint")
@config_option
@data_dir_option
def tls_fingerprint(config_path: Path | None, data_dir: Path | None) -> None:
    """Print the SHA-256 fingerprint of the API's certificate (to check it on first visit)."""
    from appliance import tls

    settings = load_settings(config_path, data_dir)
    if settings.api.tls is None:
        # Without a config, a data dir that holds a generated certificate is still answered.
        settings = settings.model_copy(update={"api": settings.api.model_copy(
            update={"tls": "auto"})})
    cert = tls.files(settings)[0]  # type: ignore[index]
    if not cert.is_file():
        click.echo(f"appliance: no certificate at {cert} (api.tls: auto makes one at the "
                   "first start)", err=True)
        sys.exit(1)
    click.echo(tls.fingerprint(cert))


def _index(settings: Settings):
    from appliance.store import Store

    return Store(settings).index


@token.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "reader"]), default="reader")
@click.pass_obj
def token_create(settings: Settings, name: str, role: str) -> None:
    """Create a token NAME and print it (shown only this once)."""
    from appliance import tokens
    from appliance.index import Conflict

    try:
        click.echo(tokens.create(_index(settings), name, role))
    except Conflict as exc:
        click.echo(f"appliance: {exc}", err=True)
        sys.exit(1)


@token.command("list")
@click.pass_obj
def token_list(settings: Settings) -> None:
    """List token names and roles (never the tokens)."""
    from appliance import tokens

    for t in tokens.listing(_index(settings)):
        click.echo(f"{t['name']}\t{t['role']}")
    for t in settings.api.tokens:
        click.echo(f"{t.name}\t{t.role}\t(config)")


@token.command("revoke")
@click.argument("name")
@click.pass_obj
def token_revoke(settings: Settings, name: str) -> None:
    """Revoke token NAME (takes effect within seconds)."""
    from appliance import tokens
    from appliance.index import NotFound

    try:
        tokens.revoke(_index(settings), name)
    except NotFound:
        click.echo(f"appliance: no token named {name!r}", err=True)
        sys.exit(1)


main.add_command(snmp_group)


@main.command()
@config_option
@data_dir_option
@click.argument("archive", type=click.Path(dir_okay=False, path_type=Path))
def backup(config_path: Path | None, data_dir: Path | None, archive: Path) -> None:
    """Write one consistent archive of the (running or stopped) appliance to ARCHIVE."""
    from appliance.backup import BackupError
    from appliance.backup import backup as make_backup

    settings = load_settings(config_path, data_dir)
    started = time.monotonic()
    try:
        manifest = make_backup(settings, archive)
    except (BackupError, OSError) as exc:
        click.echo(f"appliance: backup failed: {exc}", err=True)
        sys.exit(1)
    click.echo(
        f"appliance: {len(manifest['files'])} files of {settings.data_dir} backed up to "
        f"{archive} ({archive.stat().st_size} bytes) in {time.monotonic() - started:.1f} s",
        err=True,
    )


@main.command()
@click.argument("archive", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="A new or empty directory to restore into.")
def restore(archive: Path, data_dir: Path) -> None:
    """Restore ARCHIVE (made by `appliance backup`) into a new data dir."""
    from appliance.backup import BackupError
    from appliance.backup import restore as unpack

    setup_logging("info")
    try:
        manifest = unpack(archive, data_dir.resolve())
    except (BackupError, OSError) as exc:
        click.echo(f"appliance: restore refused: {exc}", err=True)
        sys.exit(1)
    click.echo(
        f"appliance: restored {len(manifest['files'])} files (appliance "
        f"{manifest['appliance_version']}) into {data_dir}; start it with "
        f"appliance run --data-dir {data_dir}",
        err=True,
    )


@main.command(hidden=True)
@config_option
@data_dir_option
def rrdcached(config_path: Path | None, data_dir: Path | None) -> None:
    """Replay the write-ahead log, then exec rrdcached in the foreground (run by supervisord)."""
    from appliance.programs import start_rrdcached

    start_rrdcached(load_settings(config_path, data_dir))


@main.command(hidden=True)
@config_option
@data_dir_option
def alarms(config_path: Path | None, data_dir: Path | None) -> None:
    """Run the alarm evaluator in the foreground until SIGTERM (run by supervisord)."""
    from appliance.alarms.process import main as evaluate_forever

    evaluate_forever(load_settings(config_path, data_dir))
