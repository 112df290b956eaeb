"""Archive policies laid out as RRD archives (RRAs): one RRA per (aggregation, resolution).

The policies themselves (what a client defines, the built-in ones) are plain data in
:mod:`appliance.model`; they are re-exported here for callers that import them from storage.
"""

from __future__ import annotations

from appliance.model import (
    AGGREGATION_METHODS,
    BUILTIN_POLICIES,
    ArchivePolicy,
    Kind,
    Metric,
    PolicyItem,
    make_policy,
    match_rule,
)

__all__ = [
    "BUILTIN_POLICIES", "CF_FOR_AGGREGATION", "ArchivePolicy", "PolicyItem", "make_policy",
    "match_rule", "rras",
]

#: The one data source of every metric file.
DS_NAME = "v"

#: Gnocchi aggregation name -> RRD consolidation function.
CF_FOR_AGGREGATION = {"mean": "AVERAGE", "min": "MIN", "max": "MAX", "last": "LAST"}
assert tuple(CF_FOR_AGGREGATION) == AGGREGATION_METHODS


def rras(policy: ArchivePolicy) -> list[str]:
    """The ``RRA:CF:xff:steps:rows`` arguments for ``rrdtool create``.

    xff 0.5, as Gnocchi effectively does: a point is known when at least half of its
    primary points are.
    """
    step = policy.step
    return [
        f"RRA:{CF_FOR_AGGREGATION[m]}:0.5:{item.granularity // step}:{item.points}"
        for m in policy.aggregation_methods
        for item in sorted(policy.definition, key=lambda i: i.granularity)
    ]


def heartbeat(policy: ArchivePolicy) -> int:
    """How long a value stays valid without a new one: long enough for a 5-minute poll."""
    return max(600, 3 * policy.step)


def layout(metric: Metric, policy: ArchivePolicy) -> list[str]:
    """``rrdtool create`` arguments (after the file and ``--start``) of a metric's file:
    its step, its one data source (DERIVE for a counter) and the policy's RRAs."""
    ds_type, minimum = ("DERIVE", "0") if metric.kind is Kind.CUMULATIVE else ("GAUGE", "U")
    return ["--step", str(policy.step),
            f"DS:{DS_NAME}:{ds_type}:{heartbeat(policy)}:{minimum}:U", *rras(policy)]
