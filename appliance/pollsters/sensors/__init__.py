"""Hardware sensors pollster: hwmon sysfs, thermal zones and lm-sensors' ``sensors -j``.

``hwmon``, ``thermal`` and ``lmsensors`` read one source each into the plain data of
``reading``; ``meters`` declares what each sensor kind is metered as; ``pollster`` chooses
between the sources per chip and bounds each chip's read time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from appliance.pollsters.sensors.pollster import SensorsPollster

if TYPE_CHECKING:
    from appliance.config import Settings

__all__ = ["SensorsPollster", "build"]


def build(settings: Settings) -> SensorsPollster:
    return SensorsPollster(settings.pollsters.sensors)
