"""Pollsters: one module per source kind. Each module has ``build(settings) -> Pollster``.

A plain mapping, not entry points (STYLE.md (c) 2): the set of source kinds is ours. Each
module is imported when asked for, which keeps ``libvirt`` and ``pysnmp`` out of
processes that do not read those sources (a footprint choice, not a way around a cycle).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.config import Settings
    from appliance.pollsters.base import Pollster


def _host() -> ModuleType:
    from appliance.pollsters import host

    return host


def _sensors() -> ModuleType:
    from appliance.pollsters import sensors

    return sensors


def _libvirt() -> ModuleType:
    from appliance.pollsters import libvirt

    return libvirt


def _snmp() -> ModuleType:
    from appliance.pollsters import snmp

    return snmp


#: Source kind -> its module, imported when asked for; the CLI's ``--source`` choices come
#: from here, and the workers' parent asks for each enabled one before it forks.
SOURCES: dict[str, Callable[[], ModuleType]] = {
    "host": _host,
    "sensors": _sensors,
    "libvirt": _libvirt,
    "snmp": _snmp,
}


def build(source: str, settings: Settings) -> Pollster:
    """Instantiate the pollster for ``source`` from the whole config."""
    return SOURCES[source]().build(settings)
