"""SNMP pollster: declarative meter definitions read with GETBULK, v2c and v3.

- :mod:`.definitions` loads the YAML meter definitions (``meters/*.yaml`` plus a site's
  ``definitions_dir``) into typed groups, MIB names resolved by :mod:`.mibnames` from
  tables :mod:`.mibcompile` built ahead of time;
- :mod:`.converters` is the fixed table of value converters a definition may name;
- :mod:`.client` speaks SNMP to one agent (GET, multi-column GETBULK walks, backoff);
  v2c through :mod:`.v2c`'s own codec, v3 through pysnmp;
- :mod:`.walkplan` decides which scalars and table columns a poll requests;
- :mod:`.counters` keeps counters continuous across 32-bit wraps and agent restarts;
- :mod:`.metering` turns what was read into resources and samples;
- :mod:`.pollster` (the :class:`SnmpPollster`) runs every target concurrently under its
  deadline;
- :mod:`.discovery` sweeps networks for agents; :mod:`.traps` turns notifications from
  known targets into events, received by :mod:`.traps_v2c` (no pysnmp) or, when a target
  is v3, :mod:`.traps_pysnmp` (both recorded by :mod:`appliance.snmp_programs`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.pollsters.snmp.definitions import Group, load_groups
from appliance.pollsters.snmp.mibnames import MibNames

if TYPE_CHECKING:
    from appliance.config import Settings, SnmpSettings
    from appliance.pollsters.snmp.pollster import SnmpPollster


def __getattr__(name: str) -> Any:
    """``SnmpPollster`` on first use: the API imports this package's definitions, and
    needs nothing of the pollster's."""
    if name == "SnmpPollster":
        from appliance.pollsters.snmp.pollster import SnmpPollster

        return SnmpPollster
    raise AttributeError(name)


def mib_names(snmp: SnmpSettings) -> MibNames:
    """The MIB names of ``snmp``'s config, read once per process."""
    return _mib_names(snmp.mibs_dir)


def groups(snmp: SnmpSettings) -> dict[str, Group]:
    """The meter definitions of ``snmp``'s config, read once per process.

    Once, because the ``workers`` parent reads them before it forks the SNMP agent, the trap
    receiver and the discovery loop: the three then share one copy (about 4 MB each would
    otherwise hold, MIB names included).
    """
    return _groups(snmp.definitions_dir, snmp.mibs_dir)


@functools.cache
def _mib_names(mibs_dir: Path | None) -> MibNames:
    return MibNames.load(mibs_dir)


@functools.cache
def _groups(definitions_dir: Path | None, mibs_dir: Path | None) -> dict[str, Group]:
    return load_groups(definitions_dir, _mib_names(mibs_dir))


def build(settings: Settings) -> SnmpPollster:
    """The SNMP pollster for the config's ``pollsters.snmp`` section."""
    from appliance.pollsters.snmp.pollster import SnmpPollster

    return SnmpPollster(settings.pollsters.snmp, groups(settings.pollsters.snmp))


__all__ = ["SnmpPollster", "build", "groups", "mib_names"]
