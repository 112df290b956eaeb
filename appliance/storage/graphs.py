"""Graphs of one metric drawn by rrdtool from its RRD file: the one renderer behind the API's
``/v1/metric/<id>/graph.<fmt>`` and the status page's charts.

What a graph shows is the same for every caller (the line of one aggregation, an optional
min-max band, the newest, lowest and highest values); callers choose only how it looks
(:class:`Look`), how its values read (:class:`Display`: the status page shows KB as GiB and
ns/s as %, the API keeps the stored unit), its range and its step. Every user-visible text
is escaped for rrdtool's own syntax and the file's path comes from the metric's UUID.
Cumulative meters are drawn as the per-second rates RRD keeps for them (DERIVE), labelled
``unit/s``.

One timestamp convention: the store writes a measure one step after its timestamp (see
:mod:`appliance.storage.measures`), so the newest bucket ends up to one step past the
newest measure. A graph's end is therefore extended by one step, never past the file's
last update (:func:`reach`), so that the bucket of a measure timestamped at the end is drawn
(the newest bucket would otherwise read as unknown); the API and the status page show the
same newest value.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import rrdtool

from appliance.model import Kind, Metric
from appliance.storage.measures import Measures
from appliance.storage.policy import CF_FOR_AGGREGATION, DS_NAME, ArchivePolicy


@dataclass(frozen=True, slots=True)
class Look:
    """How a graph looks: format, size, rrdtool style options, title and colours."""

    imgformat: str = "SVG"
    width: int = 640
    height: int = 220
    style: tuple[str, ...] = ()
    title: str | None = None
    line: str = "#2563EB"
    band: str | None = None  # the min-max band's colour, drawn when the archive keeps both


@dataclass(frozen=True, slots=True)
class Display:
    """How values read: the line drawn as ``value * scale`` and labelled ``unit``, the axis
    in binary prefixes (``base1024``, bytes) or, when every value is below 1000, without
    any (``plain_axis``: 0.3, never 300 m). ``summary`` is the legend's now/min/max text,
    formatted by the caller, in place of rrdtool's ``%s`` prefixes (``24 M KB``, ``296 m%``).
    """

    unit: str
    scale: float = 1.0
    base1024: bool = False
    plain_axis: bool = False
    summary: str | None = None


@dataclass(frozen=True, slots=True)
class Graph:
    image: bytes
    start: int
    end: int
    last: float | None  # the newest known value in the range, None when there is none


def unit_label(metric: Metric) -> str:
    """The unit a graph shows: a rate for cumulative meters (stored as DERIVE)."""
    unit = metric.unit or ""
    if metric.kind is Kind.CUMULATIVE:
        return f"{unit}/s" if unit else "/s"
    return unit


def escape(value: str) -> str:
    """Literal text inside a GPRINT/COMMENT/legend: rrdtool reads ``:`` as a separator and
    ``%``/``\\`` as format characters."""
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("%", "%%")


def reach(measures: Measures, metric: Metric, policy: ArchivePolicy, end: int) -> int:
    """``end`` extended by one step (the store's shift, see the module docstring), but not
    past the file's last update."""
    last = measures.last_update(metric.id)
    if last is None:
        return end
    return max(end, min(int(last), end + policy.step))


def draw(
    measures: Measures,
    metric: Metric,
    policy: ArchivePolicy,
    aggregation: str,
    start: int,
    end: int,
    look: Look,
    step: int | None = None,
    legend: str | None = None,
    flush: bool = True,
    display: Display | None = None,
) -> Graph:
    """Draw ``aggregation`` of the metric between ``start`` and ``end`` (extended by
    :func:`reach`); an empty, labelled frame when the metric has no measure yet.

    ``step`` asks for one granularity (default: rrdtool picks by the width); ``flush``
    first makes rrdcached write the metric's pending values (if rrdcached is restarting,
    what the file holds is drawn rather than nothing); ``display`` (default: the stored
    unit, rrdtool's legend) says how the values read. ``Graph.last`` is in the stored unit.
    """
    path = measures.path(metric.id)
    exists = path.is_file()
    if exists:
        if flush:
            with contextlib.suppress(OSError):
                measures.flush(metric.id)
        end = reach(measures, metric, policy, end)
    display = display or Display(unit_label(metric))
    unit = display.unit
    args = [
        "-", "--imgformat", look.imgformat, "--start", str(start), "--end", str(end),
        "--width", str(look.width), "--height", str(look.height),
    ]
    if look.title:
        args += ["--title", look.title.replace("\\", "\\\\")]
    if step is not None:
        args += ["--step", str(step)]
    args += ["--vertical-label", unit or " ", *look.style]
    if display.base1024:
        args += ["--base", "1024"]
    elif display.plain_axis:
        args += ["--units-exponent", "0"]
    if not exists:
        args += ["HRULE:0#00000000", "COMMENT:no measures yet\\n"]
        return Graph(rrdtool.graphv(*args)["image"], start, end, None)
    args[1:1] = measures.daemon_args()  # read through rrdcached: no lock on the file here
    rrd = str(path).replace(":", "\\:")
    at = f":step={step}" if step is not None else ""
    scale = repr(float(display.scale))
    args += [f"DEF:raw={rrd}:{DS_NAME}:{CF_FOR_AGGREGATION[aggregation]}{at}",
             f"CDEF:line=raw,{scale},*"]
    # Below the finest step min = max = the line: a band would only add noise.
    if (look.band and step is not None and step > policy.step
            and {"min", "max"} <= set(policy.aggregation_methods)):
        args += [
            f"DEF:rawlo={rrd}:{DS_NAME}:MIN{at}",
            f"DEF:rawhi={rrd}:{DS_NAME}:MAX{at}",
            f"CDEF:lo=rawlo,{scale},*",
            f"CDEF:band=rawhi,rawlo,-,{scale},*",
            "LINE:lo",
            f"AREA:band{look.band}:min–max:STACK",
        ]
    args += [f"LINE1.5:line{look.line}:{escape(aggregation)}", "VDEF:last=raw,LAST"]
    if display.summary is not None:
        args.append(f"COMMENT:{escape(display.summary)}")
    else:
        u = escape(unit)
        args += [
            "VDEF:newest=line,LAST",
            "VDEF:low=line,MINIMUM",
            "VDEF:high=line,MAXIMUM",
            f"GPRINT:newest:now %.3lg %s{u}",
            f"GPRINT:low:min %.3lg %s{u}",
            f"GPRINT:high:max %.3lg %s{u}",
        ]
    if legend:
        args.append(f"COMMENT:{escape(legend)}\\r")
    args.append("PRINT:last:%lf")
    out = rrdtool.graphv(*args)
    try:
        last: float | None = float(out.get("print[0]", "nan"))
    except ValueError:
        last = None
    return Graph(out["image"], start, end, None if last is None or math.isnan(last) else last)
