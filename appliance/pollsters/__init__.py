"""Pollsters: one module per source kind. Each module has ``build(settings) -> Pollster``.

A plain mapping, not entry points (STYLE.md (c) 2): the set of source kinds is ours. Each
builder imports its module when called, which keeps ``libvirt`` and ``pysnmp`` out of
processes that do not read those sources (a footprint choice, not a way around a cycle).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.config import Settings
    from appliance.pollsters.base import Pollster


def _host(settings: Settings) -> Pollster:
    from appliance.pollsters import host

    return host.build(settings)


def _sensors(settings: Settings) -> Pollster:
    from appliance.pollsters import sensors

    return sensors.build(settings)


def _libvirt(settings: Settings) -> Pollster:
    from appliance.pollsters import libvirt

    return libvirt.build(settings)


def _snmp(settings: Settings) -> Pollster:
    from appliance.pollsters import snmp

    return snmp.build(settings)


#: Source kind -> the builder of its pollster; the CLI's ``--source`` choices come from here.
SOURCES: dict[str, Callable[[Settings], Pollster]] = {
    "host": _host,
    "sensors": _sensors,
    "libvirt": _libvirt,
    "snmp": _snmp,
}


def build(source: str, settings: Settings) -> Pollster:
    """Instantiate the pollster for ``source`` from the whole config."""
    return SOURCES[source](settings)
