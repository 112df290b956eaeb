"""Checks of an alarm against the index at creation and update (the API answers 400).

Aodh asks Gnocchi the same questions: does the metric (or resource) exist, and does its
archive policy keep the rule's aggregation method at the rule's granularity. A forecast also
needs its policy to keep enough history for the seasons it looks back on.
"""

from __future__ import annotations

import json
from typing import Any

from appliance.alarms.model import EVENT, Alarm, InvalidAlarm
from appliance.alarms.series import resolve_resource_id
from appliance.index import Index, NotFound
from appliance.index.query import QueryError, compile_query
from appliance.storage.policy import ArchivePolicy


def _metric_policy(index: Index, metric_id: str) -> ArchivePolicy:
    try:
        return index.policy(index.metric(metric_id).archive_policy_name)
    except NotFound:
        raise InvalidAlarm(f"metric {metric_id} does not exist") from None


def _policies(index: Index, type_: str, rule: dict[str, Any]) -> list[ArchivePolicy]:
    if type_ == "gnocchi_resources_threshold":
        rid = resolve_resource_id(rule["resource_id"])
        try:
            index.resource(rid, rule["resource_type"])
        except NotFound:
            raise InvalidAlarm(
                f"resource {rule['resource_id']} of type {rule['resource_type']} does not exist"
            ) from None
        metric_id = index.resource_metrics([rid])[rid].get(rule["metric"])
        if metric_id is None:
            raise InvalidAlarm(f"resource {rule['resource_id']} has no metric {rule['metric']}")
        return [_metric_policy(index, metric_id)]
    if type_ == "gnocchi_aggregation_by_metrics_threshold":
        return [_metric_policy(index, m) for m in rule["metrics"]]
    if type_ == "gnocchi_aggregation_by_resources_threshold":
        if not index.resource_repo.type_exists(rule["resource_type"]):
            raise InvalidAlarm(f"resource type {rule['resource_type']} does not exist")
        try:
            compile_query(json.loads(rule["query"]))
        except QueryError as exc:
            raise InvalidAlarm(f"query: {exc}") from None
        try:
            return [index.policy(index.policy_for(rule["metric"]))]
        except NotFound:
            return []
    return [_metric_policy(index, rule["metric"])]


def check(alarm: Alarm, index: Index) -> None:
    """Raise :class:`InvalidAlarm` unless every rule of ``alarm`` can be evaluated."""
    for type_, rule in alarm.leaves():
        if type_ == EVENT:
            continue  # reads events, not series: nothing to check against a policy
        g, method = rule["granularity"], rule["aggregation_method"]
        for policy in _policies(index, type_, rule):
            if g not in policy.granularities:
                raise InvalidAlarm(
                    f"granularity {g} is not in archive policy {policy.name!r} "
                    f"({', '.join(str(x) for x in policy.granularities)})"
                )
            if method not in policy.aggregation_methods:
                raise InvalidAlarm(
                    f"aggregation method {method!r} is not kept by archive policy "
                    f"{policy.name!r} ({', '.join(policy.aggregation_methods)})"
                )
            if type_ == "rrd_forecast":
                kept = next(i.timespan for i in policy.definition if i.granularity == g)
                needed = rule["season"] * rule["seasons"] + rule["window"]
                if needed > kept:
                    raise InvalidAlarm(
                        f"the forecast looks back {needed}s but archive policy "
                        f"{policy.name!r} keeps {kept}s at granularity {g}"
                    )
