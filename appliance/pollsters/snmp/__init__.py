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
- :mod:`.engine` runs every target concurrently under its deadline;
- :mod:`.runtime` keeps targets added at run time (:mod:`.discovery`, the API) in the index;
- :mod:`.traps` turns notifications from known targets into events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from appliance.pollsters.snmp.definitions import load_groups
from appliance.pollsters.snmp.mibnames import MibNames
from appliance.pollsters.snmp.runtime import RuntimeTargets

if TYPE_CHECKING:
    from appliance.config import Settings
    from appliance.pollsters.snmp.engine import SnmpPollster


def __getattr__(name: str) -> Any:
    """``SnmpPollster`` on first use: the API imports this package's definitions and
    runtime targets, and must not pay for importing pysnmp."""
    if name == "SnmpPollster":
        from appliance.pollsters.snmp.engine import SnmpPollster

        return SnmpPollster
    raise AttributeError(name)


def build(settings: Settings) -> SnmpPollster:
    """The SNMP pollster for the config's ``pollsters.snmp`` section."""
    from appliance.pollsters.snmp.engine import SnmpPollster

    snmp = settings.pollsters.snmp
    groups = load_groups(snmp.definitions_dir, MibNames.load(snmp.mibs_dir))
    return SnmpPollster(snmp, groups, RuntimeTargets(settings.index_path))


__all__ = ["SnmpPollster", "build"]
