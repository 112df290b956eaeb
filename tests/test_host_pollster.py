"""The host pollster on this machine: which block devices it meters (node_exporter's rule)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from appliance import config
from appliance.config import ConfigError, HostSettings
from appliance.pollsters.host import HostPollster

#: Every block device the kernel counts here (this machine has loop0-7, vda and zram0).
DEVICES = {line.split()[2] for line in Path("/proc/diskstats").read_text().splitlines()}


def disks(settings: HostSettings) -> set[str]:
    result = HostPollster(settings, "test-host").poll([], time.monotonic() + 10)
    return {s.resource.attributes["device_name"] for s in result.samples
            if s.resource.type == "host_disk"}


def test_loop_ram_zram_and_partitions_are_left_out_by_default():
    metered = disks(HostSettings())
    assert metered, DEVICES
    assert not {d for d in metered if re.match(r"(z?ram|loop|fd)\d+$", d)}
    assert metered == {d for d in DEVICES
                       if not re.match(r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$", d)}


def test_the_exclusion_is_configurable():
    assert disks(HostSettings(exclude_disks="^$")) == DEVICES
    assert disks(HostSettings(exclude_disks="^(?!loop0$)")) == {"loop0"} & DEVICES


def test_a_bad_exclusion_is_named():
    with pytest.raises(ConfigError, match=r"pollsters.host.exclude_disks.*regular expression"):
        config.parse({"pollsters": {"host": {"exclude_disks": "(loop"}}}, "x.yaml")
