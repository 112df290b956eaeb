"""Plain data passed between pollsters, the store and the API.

A pollster builds one :class:`Resource` per thing it measures and many :class:`Sample`
objects that point at it, so a resource's attributes travel once per poll, not once per
value (Gnocchi's lesson: metadata is not copied onto every point).
"""

from __future__ import annotations

import fnmatch
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# Namespace for resource ids derived from a source's natural key (uuid5). Fixed forever:
# changing it would give every resource a new id.
RESOURCE_NAMESPACE = uuid.UUID("8d3b6a52-2c4f-5d0e-9a57-6f1c2e0b7a41")
#: Gnocchi's aggregation methods that an archive policy may keep (each is an RRD
#: consolidation function, see :mod:`appliance.storage.policy`).
AGGREGATION_METHODS = ("mean", "min", "max", "last")


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


# --- archive policies: how long each resolution is kept ---------------------------------------
# Gnocchi's three built-in policies are shipped as they are, so a Gnocchi user finds the names
# and resolutions they know. Their RRD layout is :func:`appliance.storage.policy.rras`.


@dataclass(frozen=True, slots=True)
class PolicyItem:
    granularity: int  # seconds per point
    points: int

    @property
    def timespan(self) -> int:
        return self.granularity * self.points


@dataclass(frozen=True, slots=True)
class ArchivePolicy:
    name: str
    definition: tuple[PolicyItem, ...]
    aggregation_methods: tuple[str, ...] = ("mean", "min", "max")
    back_window: int = 0
    #: The RRD step: the finest granularity (every other one must be a multiple of it).
    #: Computed once; the write path asks for it for every metric.
    step: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "step", min((item.granularity for item in self.definition), default=0)
        )

    @property
    def granularities(self) -> list[int]:
        return sorted(item.granularity for item in self.definition)

    def validate(self) -> None:
        """Raise ValueError unless this policy can be laid out as RRAs."""
        if not self.definition:
            raise ValueError("definition must not be empty")
        grans = [i.granularity for i in self.definition]
        if len(set(grans)) != len(grans):
            raise ValueError("each granularity may appear only once")
        step = self.step
        for g in grans:
            if g % step:
                raise ValueError(f"granularity {g} is not a multiple of the finest ({step})")
        unknown = set(self.aggregation_methods) - set(AGGREGATION_METHODS)
        if unknown:
            raise ValueError(f"unknown aggregation methods: {', '.join(sorted(unknown))}")

    def to_gnocchi(self) -> dict:
        """The policy in Gnocchi's JSON shape."""
        return {
            "name": self.name,
            "back_window": self.back_window,
            "aggregation_methods": sorted(self.aggregation_methods),
            "definition": [
                {
                    "granularity": _hms(i.granularity),
                    "points": i.points,
                    "timespan": _hms(i.timespan),
                }
                for i in sorted(self.definition, key=lambda i: i.granularity)
            ],
        }


def _hms(seconds: int) -> str:
    """Gnocchi prints timespans as ``H:MM:SS`` (days as ``N days, H:MM:SS``)."""
    days, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    hms = f"{h}:{m:02d}:{s:02d}"
    if days:
        return f"{days} day{'s' if days != 1 else ''}, {hms}"
    return hms


def make_policy(
    name: str,
    items: Iterable[tuple[int, int]],
    aggregation_methods: Iterable[str] = ("mean", "min", "max"),
    back_window: int = 0,
) -> ArchivePolicy:
    """Build a policy from ``(granularity, points)`` pairs and check it."""
    policy = ArchivePolicy(
        name,
        tuple(PolicyItem(g, p) for g, p in items),
        tuple(aggregation_methods),
        back_window,
    )
    policy.validate()
    return policy


DAY = 86400
BUILTIN_POLICIES: dict[str, ArchivePolicy] = {
    "low": make_policy("low", [(300, 30 * DAY // 300)]),
    "medium": make_policy("medium", [(60, 7 * DAY // 60), (3600, 365 * DAY // 3600)]),
    "high": make_policy(
        "high", [(1, 3600), (60, 7 * DAY // 60), (3600, 365 * DAY // 3600)]
    ),
}


def match_rule(metric_name: str, rules: Iterable[tuple[str, str]]) -> str | None:
    """The policy of the longest pattern that matches ``metric_name`` (Gnocchi's rule)."""
    best: tuple[int, str] | None = None
    for pattern, policy in rules:
        if fnmatch.fnmatchcase(metric_name, pattern) and (best is None or len(pattern) > best[0]):
            best = (len(pattern), policy)
    return best[1] if best else None


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened to a resource at an instant (an SNMP trap), with its details
    as traits; kept in the index (:mod:`appliance.index.events`)."""

    timestamp: float
    event_type: str
    resource_id: str | None
    source: str
    traits: dict[str, Any] = field(default_factory=dict)
