"""Plain data passed between pollsters, the store and the API.

A pollster builds one :class:`Resource` per thing it measures and many :class:`Sample`
objects that point at it, so a resource's attributes travel once per poll, not once per
value (Gnocchi's lesson: metadata is not copied onto every point).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# Namespace for resource ids derived from a source's natural key (uuid5). Fixed forever:
# changing it would give every resource a new id.
RESOURCE_NAMESPACE = uuid.UUID("8d3b6a52-2c4f-5d0e-9a57-6f1c2e0b7a41")


def resource_id_for(natural_key: str) -> str:
    """Return the stable resource UUID for a natural key such as ``snmp://host/ifIndex/3``."""
    return str(uuid.uuid5(RESOURCE_NAMESPACE, natural_key))


class Kind(StrEnum):
    """How a meter's values behave over time: this picks the RRD data-source type."""

    GAUGE = "gauge"  # a level: stored as is (RRD GAUGE)
    CUMULATIVE = "cumulative"  # a counter that only grows: stored as a rate (RRD DERIVE, min 0)


@dataclass(slots=True)
class Resource:
    """A thing that is measured: a host, an instance, an interface, a sensor.

    ``original_resource_id`` is the source's own name for it (Gnocchi's field of that name);
    ``id`` is derived from it with :func:`resource_id_for`. ``ended_at`` (epoch seconds) is set
    when the source says the thing is gone.
    """

    id: str
    type: str
    original_resource_id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    ended_at: float | None = None

    @classmethod
    def from_key(
        cls, type_: str, natural_key: str, attributes: dict[str, Any] | None = None
    ) -> Resource:
        return cls(resource_id_for(natural_key), type_, natural_key, dict(attributes or {}))


@dataclass(slots=True)
class Sample:
    """One value of one meter of one resource at one time (epoch seconds, UTC)."""

    resource: Resource
    metric_name: str
    unit: str
    kind: Kind
    value: float
    timestamp: float


@dataclass(slots=True)
class TargetReport:
    """What happened when one source polled one target: the appliance's own health.

    ``detail`` carries source-specific figures (SNMP PDUs, domains skipped, ...).
    """

    source: str
    target: str
    started_at: float
    duration: float
    samples: int = 0
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class PollResult:
    """Everything one poll produced: values, resource changes without values, health."""

    samples: list[Sample] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)
    reports: list[TargetReport] = field(default_factory=list)

    def extend(self, other: PollResult) -> None:
        self.samples.extend(other.samples)
        self.resources.extend(other.resources)
        self.reports.extend(other.reports)


@dataclass(frozen=True, slots=True)
class Metric:
    """A series of one meter of one resource (or a free-standing pushed metric)."""

    id: str
    name: str | None
    unit: str | None
    kind: Kind
    resource_id: str | None
    archive_policy_name: str
    created_at: float
    creator: str = "appliance"
