"""Pollsters: one module per source kind. Each module has ``build(settings) -> Pollster``.

A plain mapping, not entry points (STYLE.md (c) 2): the set of source kinds is ours, and a
lazy import keeps ``libvirt`` and ``pysnmp`` out of processes that do not read those sources.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.config import Settings
    from appliance.pollsters.base import Pollster

SOURCES: dict[str, str] = {
    "host": "appliance.pollsters.host",
    "sensors": "appliance.pollsters.sensors",
    "libvirt": "appliance.pollsters.libvirt",
    "snmp": "appliance.pollsters.snmp",
}


def build(source: str, settings: Settings) -> Pollster:
    """Instantiate the pollster for ``source`` from the whole config."""
    module = importlib.import_module(SOURCES[source])
    return module.build(settings)


def enabled_sources(settings: Settings) -> list[str]:
    """Sources switched on in the config (SNMP only when it has targets)."""
    p = settings.pollsters
    on = [name for name in ("host", "sensors", "libvirt") if getattr(p, name).enabled]
    if p.snmp.enabled and p.snmp.targets:
        on.append("snmp")
    return on
