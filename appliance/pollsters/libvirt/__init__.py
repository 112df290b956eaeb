"""Hypervisor pollster (libvirt): Ceilometer's instance, disk and interface meters.

``inspector`` reads libvirt into plain dataclasses, ``meters`` declares what is metered,
``events`` turns lifecycle events into resource updates, ``pollster`` ties them together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from appliance.pollsters.libvirt.pollster import LibvirtPollster

if TYPE_CHECKING:
    from appliance.config import Settings

__all__ = ["LibvirtPollster", "build"]


def build(settings: Settings) -> LibvirtPollster:
    return LibvirtPollster(settings.pollsters.libvirt)
