"""The status page's views: overview, resources, one resource, alarms, and chart images."""

from __future__ import annotations

import gzip
import json

from flask import Blueprint, Response, abort, current_app, render_template, request

from appliance import scaleout
from appliance.index import NotFound, events
from appliance.index.snmp_targets import listing
from appliance.web.context import get_settings, get_store
from appliance.web.ui import alarms, catalog, charts, health

bp = Blueprint("pages", __name__)

#: Charts per step of "show more" on a resource page.
CHARTS_PER_PAGE = 24
#: Seconds between the pages' own refreshes (the live region is re-fetched in place).
REFRESH_SECONDS = 15
CHART_REFRESH_SECONDS = 60
RECENT_EVENTS = 20  # SNMP traps and other events listed on the overview and a resource


def _disk() -> health.DiskUsage:
    return current_app.extensions.setdefault("appliance.web.ui.disk", health.DiskUsage())


@bp.get("/")
def overview():
    settings, store = get_settings(), get_store()
    ext = current_app.extensions
    index = store.index
    alarm_rows = alarms.listing(index)
    return render_template(
        "overview.html",
        refresh=REFRESH_SECONDS,
        version=ext["appliance.version"],
        uptime=health.uptime(settings, ext["appliance.started"]),
        counts=index.counts(),
        counters=index.counters(),
        disk=_disk().measure(settings.data_dir),
        processes=health.processes(settings),
        sources=health.source_rows(settings, index),
        types=health.resource_types(index),
        alarm_count=len(alarm_rows),
        firing=[a for a in alarm_rows if a["state"] == "alarm"],
        events=events.recent(index, RECENT_EVENTS),
        snmp_targets=listing(settings.pollsters.snmp.targets, index),
        coordination=scaleout.coordination(settings),
        publishers=scaleout.publishers(settings),
    )


@bp.get("/resources")
def resources():
    store = get_store()
    type_ = request.args.get("type") or None
    query = request.args.get("q", "").strip()[:200]
    marker = request.args.get("marker") or None
    try:
        rows, next_marker = catalog.search(store, type_, query, marker)
    except NotFound:
        abort(400, "That page marker is no longer valid; start from the first page.")
    return render_template(
        "resources.html",
        refresh=REFRESH_SECONDS,
        types=health.resource_types(store.index),
        type_=type_,
        query=query,
        rows=[{"row": r, "name": catalog.display_name(r)} for r in rows],
        headlines=catalog.headlines(store, [r["id"] for r in rows]),
        next_marker=next_marker,
        first_page=marker is None,
    )


@bp.get("/resources/<resource_id>")
def resource(resource_id: str):
    store = get_store()
    try:
        row = store.index.resource(resource_id)
    except NotFound:
        abort(404, "No such resource.")
    range_key = _range()
    query = request.args.get("q", "").strip()[:200]
    show = _positive_int("show", CHARTS_PER_PAGE)
    metrics = sorted(store.index.metrics(resource_id=resource_id), key=lambda m: m.name or "")
    matching = [m for m in metrics if query.lower() in (m.name or "").lower()]
    return render_template(
        "resource.html",
        refresh=CHART_REFRESH_SECONDS,
        row=row,
        name=catalog.display_name(row),
        attrs=json.loads(row["attributes"]),
        history=catalog.history(store.index.history(resource_id)),
        events=events.recent(store.index, RECENT_EVENTS, resource_id),
        ranges=charts.RANGES,
        range_key=range_key,
        query=query,
        total=len(metrics),
        matching=len(matching),
        shown=[(m, charts.display_unit(m)) for m in matching[:show]],
        show=show,
        step=CHARTS_PER_PAGE,
        width=charts.WIDTH,
        height=charts.HEIGHT,
    )


@bp.get("/alarms")
def alarm_page():
    index = get_store().index
    return render_template(
        "alarms.html",
        refresh=REFRESH_SECONDS,
        alarms=alarms.listing(index),
        history=alarms.history(index),
    )


@bp.get("/ui/chart/<metric_id>.svg")
def chart(metric_id: str):
    store = get_store()
    try:
        metric = store.index.metric(metric_id)
    except NotFound:
        abort(404, "No such metric.")
    range_key = _range()
    drawn = charts.render(
        store.measures, metric, store.index.policy(metric.archive_policy_name), range_key
    )
    body = drawn.svg
    response = Response(body, mimetype="image/svg+xml")
    if "gzip" in request.headers.get("Accept-Encoding", "") and len(body) > 1024:
        response.set_data(gzip.compress(body, compresslevel=5))
        response.headers["Content-Encoding"] = "gzip"
        response.headers["Vary"] = "Accept-Encoding"
    response.headers.update({
        "Cache-Control": "no-store",  # a chart is cheap and must show the newest points
        "X-Chart-Range": range_key,
        "X-Chart-Start": str(drawn.start),
        "X-Chart-End": str(drawn.end),
        "X-Chart-Granularity": str(drawn.granularity),
        "X-Chart-Last": "none" if drawn.last is None else repr(drawn.last),
    })
    return response


def _range() -> str:
    key = request.args.get("range", charts.DEFAULT_RANGE)
    if key not in charts.RANGES:
        abort(400, f"range must be one of {', '.join(charts.RANGES)}")
    return key


def _positive_int(name: str, default: int) -> int:
    try:
        return max(1, min(int(request.args.get(name, default)), 10_000))
    except ValueError:
        return default
