"""What the API shows of the appliance's life among others: groups, shares, publishers.

Read from the state files the agents and the evaluator write (:mod:`appliance.runstate`), so
the API process never joins a group or holds a queue itself. Used by ``/v1/status``,
``/metrics`` and the status page.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from appliance import runstate
from appliance.config import Settings


def coordination(settings: Settings) -> dict[str, Any]:
    """The backend, this member, and per group its members and this appliance's share."""
    if settings.coordination.backend_url is None:
        return {"enabled": False}
    from appliance.coordination import member_name

    url = settings.coordination.backend_url.get_secret_value()
    groups = runstate.read_all(settings.run_dir, "coordination")
    return {"enabled": True, "backend": url.split(":", 1)[0], "member": member_name(settings),
            "groups": groups}


def publishers(settings: Settings) -> list[dict[str, Any]]:
    """Each configured publisher, summed over the agents that feed it."""
    out: dict[str, dict[str, Any]] = {}
    configured = {p.name for p in settings.publishers}  # not the file of one removed since
    for s in runstate.read_all(settings.run_dir, "publishers"):
        if s.get("publisher") not in configured:
            continue
        row = out.setdefault(s["publisher"], {
            "publisher": s["publisher"], "kind": s["kind"], "backlog": 0, "sent": 0,
            "dropped": 0, "failures": 0, "last_success": None, "last_error": None})
        for key in ("backlog", "sent", "dropped", "failures"):
            row[key] += s[key]
        if s["last_success"] and (row["last_success"] or 0) < s["last_success"]:
            row["last_success"] = s["last_success"]
        row["last_error"] = row["last_error"] or s["last_error"]
    return list(out.values())


def metric_families(settings: Settings) -> Iterator[Metric]:
    """``appliance_publisher_*`` and ``appliance_coordination_*`` for ``/metrics``."""
    label = ["publisher"]
    backlog = GaugeMetricFamily("appliance_publisher_backlog",
                                "Samples queued for a publisher", labels=label)
    sent = CounterMetricFamily("appliance_publisher_sent", "Samples a publisher sent",
                               labels=label)
    dropped = CounterMetricFamily("appliance_publisher_dropped",
                                  "Samples a publisher dropped (queue full or refused)",
                                  labels=label)
    last = GaugeMetricFamily("appliance_publisher_last_success_timestamp_seconds",
                             "When a publisher last sent a batch", labels=label)
    for p in publishers(settings):
        key = [p["publisher"]]
        backlog.add_metric(key, p["backlog"])
        sent.add_metric(key, p["sent"])
        dropped.add_metric(key, p["dropped"])
        if p["last_success"]:
            last.add_metric(key, p["last_success"])
    yield from (backlog, sent, dropped, last)
    state = coordination(settings)
    if state["enabled"]:
        labels = ["group"]
        connected = GaugeMetricFamily("appliance_coordination_connected",
                                      "1 if the coordination backend answers", labels=labels)
        members = GaugeMetricFamily("appliance_coordination_members", "Members of a group",
                                    labels=labels)
        owned = GaugeMetricFamily("appliance_coordination_owned",
                                  "Targets (or alarms) of a group this appliance takes",
                                  labels=labels)
        for g in state["groups"]:
            connected.add_metric([g["group"]], 1.0 if g["connected"] else 0.0)
            members.add_metric([g["group"]], len(g["members"]))
            owned.add_metric([g["group"]], len(g["owned"]))
        yield from (connected, members, owned)
