"""SNMP pollster: declarative meter definitions read with GETBULK, v2c and v3.

- :mod:`.definitions` loads the YAML meter definitions (``meters/*.yaml`` plus a site's
  ``definitions_dir``) into typed groups;
- :mod:`.converters` is the fixed table of value converters a definition may name;
- :mod:`.client` speaks SNMP to one agent (GET, multi-column GETBULK walks, backoff);
- :mod:`.walkplan` decides which scalars and table columns a poll requests;
- :mod:`.counters` keeps counters continuous across 32-bit wraps and agent restarts;
- :mod:`.metering` turns what was read into resources and samples;
- :mod:`.pollster` (the :class:`SnmpPollster`) runs every target concurrently under its
  deadline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from appliance.pollsters.snmp.definitions import load_groups
from appliance.pollsters.snmp.pollster import SnmpPollster

if TYPE_CHECKING:
    from appliance.config import Settings


def build(settings: Settings) -> SnmpPollster:
    """The SNMP pollster for the config's ``pollsters.snmp`` section."""
    snmp = settings.pollsters.snmp
    return SnmpPollster(snmp, load_groups(snmp.definitions_dir))


__all__ = ["SnmpPollster", "build"]
