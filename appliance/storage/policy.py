"""Archive policies: how long each resolution is kept, and their mapping onto RRAs.

Gnocchi's three built-in policies are shipped as they are, so a Gnocchi user finds the names
and resolutions they know. An RRD holds one RRA per (aggregation method, resolution).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field

#: Gnocchi aggregation name -> RRD consolidation function.
CF_FOR_AGGREGATION = {"mean": "AVERAGE", "min": "MIN", "max": "MAX", "last": "LAST"}


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
        unknown = set(self.aggregation_methods) - set(CF_FOR_AGGREGATION)
        if unknown:
            raise ValueError(f"unknown aggregation methods: {', '.join(sorted(unknown))}")

    def rras(self) -> list[str]:
        """The ``RRA:CF:xff:steps:rows`` arguments for ``rrdtool create``.

        xff 0.5, as Gnocchi effectively does: a point is known when at least half of its
        primary points are.
        """
        step = self.step
        return [
            f"RRA:{CF_FOR_AGGREGATION[m]}:0.5:{item.granularity // step}:{item.points}"
            for m in self.aggregation_methods
            for item in sorted(self.definition, key=lambda i: i.granularity)
        ]

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
