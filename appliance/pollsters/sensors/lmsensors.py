"""Read ``sensors -j`` (lm-sensors): the operator's view of the chips libsensors knows.

It applies ``/etc/sensors3.conf`` and ``sensors.d``: labels ("CPU Fan" instead of fan2),
``compute`` lines that scale voltage dividers back to real volts, ``ignore`` lines for
unconnected inputs. Raw sysfs knows none of that, so for the chips listed here this view
wins. The JSON keeps the sysfs sub-feature names (``"temp1_input"``), which gives the same
feature ids, hence the same resource ids, as the hwmon reader.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from typing import Any

from appliance.pollsters.sensors.reading import (
    SUBFEATURE,
    ChipReading,
    feature_from_subfeatures,
)


class LmSensorsUnavailable(Exception):
    """``sensors`` failed or printed something that is not JSON: an error worth reporting."""


class LmSensorsAbsent(LmSensorsUnavailable):
    """``sensors`` is not installed or knows no chip here: normal on VMs, not an error."""


def run(command: Sequence[str]) -> str:
    """The command's JSON text. Time limits are the caller's (it runs under a runner)."""
    try:
        proc = subprocess.run(list(command), capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise LmSensorsAbsent(f"{command[0]}: {exc.strerror}") from None
    except OSError as exc:
        raise LmSensorsUnavailable(f"{command[0]}: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["no output"])[0]
        # `sensors` exits 1 with "No sensors found!" on machines without chips.
        kind = LmSensorsAbsent if "No sensors found" in proc.stderr else LmSensorsUnavailable
        raise kind(f"{command[0]} exited {proc.returncode}: {first}")
    return proc.stdout


def parse(text: str) -> list[ChipReading]:
    """Chips and features of one ``sensors -j`` output, in meter units."""
    try:
        doc: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LmSensorsUnavailable(f"output is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise LmSensorsUnavailable("output is not a JSON object of chips")
    chips = []
    for chip, body in doc.items():
        if not isinstance(body, dict):
            continue
        out = ChipReading(chip, "lm-sensors")
        for label, subs in body.items():
            if not isinstance(subs, dict):
                continue  # "Adapter": "ISA adapter"
            feature, values = _feature(subs)
            if feature is None:
                continue  # intrusion0_alarm, cpu0_vid, beep_enable, ...
            reading = feature_from_subfeatures(chip, feature, label, values, scale=False)
            if reading is None:
                out.unreadable.append(f"{label}: no value")
            else:
                out.readings.append(reading)
        chips.append(out)
    return chips


def _feature(subs: dict[str, Any]) -> tuple[str | None, dict[str, float]]:
    feature, values = None, {}
    for key, value in subs.items():
        m = SUBFEATURE.match(key)
        if m is None or not isinstance(value, int | float):
            continue
        feature = feature or f"{m[1]}{m[2]}"
        values[m[3]] = float(value)
    return feature, values


def read(command: Sequence[str]) -> list[ChipReading]:
    return parse(run(command))
