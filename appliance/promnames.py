"""How a meter becomes a Prometheus series: one naming for ``/metrics`` and remote write.

Meters keep their Ceilometer names, mapped to valid Prometheus names
(``disk.device.read.bytes`` -> ``disk_device_read_bytes``); cumulative meters are counters
(``_total``). Labels are the resource's id and type, the metric id and the resource's
attributes. Kept apart from the Flask blueprint so that the agents' publishers use the very
same functions without importing the web stack.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

FIXED_LABELS = ("resource_id", "resource_type", "metric_id")


@lru_cache(maxsize=8192)  # a handful of meter and attribute names, asked for every sample
def prometheus_name(name: str) -> str:
    """A valid metric or label name: ``[a-zA-Z_][a-zA-Z0-9_]*``, never ``__``-prefixed."""
    clean = re.sub(r"[^a-zA-Z0-9_]", "_", name)
    if not clean or clean[0].isdigit():
        clean = "_" + clean
    return "x" + clean if clean.startswith("__") else clean


def series_name(meter: str, counter: bool) -> str:
    """The exposed series name of a meter (prometheus-client adds ``_total`` to counters)."""
    name = prometheus_name(meter)
    return f"{name}_total" if counter and not name.endswith("_total") else name


def attribute_labels(attributes: Mapping[str, Any]) -> dict[str, str]:
    """Attribute name -> label name; the first attribute wins a clash, fixed labels win all."""
    out: dict[str, str] = {}
    taken = set(FIXED_LABELS)
    for key in attributes:
        label = prometheus_name(key)
        if label not in taken:
            out[key] = label
            taken.add(label)
    return out


def series_labels(
    resource_id: str | None, resource_type: str | None, metric_id: str,
    attributes: Mapping[str, Any],
) -> dict[str, str]:
    """The labels of one metric's series (an empty value is no label, as in Prometheus)."""
    labels = {"resource_id": resource_id or "", "resource_type": resource_type or "",
              "metric_id": metric_id}
    for key, label in attribute_labels(attributes).items():
        value = attributes[key]
        labels[label] = "" if value is None else str(value)
    return {k: v for k, v in labels.items() if v != ""}
