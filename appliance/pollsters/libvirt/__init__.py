"""Hypervisor pollster (libvirt): Ceilometer's instance, disk and interface meters.

``inspector`` reads libvirt into plain dataclasses, ``meters`` declares what is metered,
``events`` turns lifecycle events into resource updates, ``pollster`` ties them together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from appliance.pollsters.libvirt.pollster import LibvirtPollster

if TYPE_CHECKING:
    from appliance.config import Settings
    from appliance.pollsters.base import Pollster

__all__ = ["LibvirtPollster", "build"]


def build(settings: Settings) -> Pollster:
    """One hypervisor (``uri``), or each of ``uris`` as a target of its own."""
    cfg = settings.pollsters.libvirt
    if cfg.uris:
        from appliance.pollsters.libvirt.several import SeveralHypervisors

        return SeveralHypervisors(cfg)
    return LibvirtPollster(cfg)
