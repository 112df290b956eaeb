"""Archive policies laid out as RRD archives (RRAs): one RRA per (aggregation, resolution).

The policies themselves (what a client defines, the built-in ones) are plain data in
:mod:`appliance.model`; they are re-exported here for callers that import them from storage.
"""

from __future__ import annotations

from appliance.model import (
    AGGREGATION_METHODS,
    BUILTIN_POLICIES,
    ArchivePolicy,
    PolicyItem,
    make_policy,
    match_rule,
)

__all__ = [
    "BUILTIN_POLICIES", "CF_FOR_AGGREGATION", "ArchivePolicy", "PolicyItem", "make_policy",
    "match_rule", "rras",
]

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
