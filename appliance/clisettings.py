"""What every ``appliance`` subcommand shares: the config and data-dir options, loading
the settings (exit 2 naming the file, key and problem) and logging set-up.

Apart from :mod:`appliance.cli` so that command groups in their own modules
(:mod:`appliance.snmp_cli`) use it without importing the main command.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from appliance import config as config_mod
from appliance.config import ConfigError, Settings

config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
    default=None, help="YAML config file (default: built-in defaults).",
)
data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Where everything is written (overrides data_dir in the config).",
)


def load_settings(config_path: Path | None, data_dir: Path | None) -> Settings:
    """Load the config or exit 2 with the file, the key and what is wrong."""
    try:
        settings = config_mod.load(config_path, data_dir.resolve() if data_dir else None)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    setup_logging(settings.log_level)
    return settings


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
