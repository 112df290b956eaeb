"""The appliance's PromQL answers equal Prometheus 2.42's over the same samples.

Both hold the same 3 hours of one-minute samples (gauges and a counter, 8 disks on 4
hosts; see tests/promserver.py): the appliance in RRD files through rrdcached, Prometheus
in a TSDB backfilled by promtool. Every query below runs through both, as a range query on
the minute grid, on a grid 30 s off it, and as an instant query.

Tolerance: relative 1e-9 (absolute 1e-9 near zero). Samples sit on bucket boundaries,
so each bucket holds exactly one sample and the answers are the same numbers, up to float
rounding in RRD's consolidation and in sums taken as differences of cumulative sums.

Off the boundaries (samples 17 s after each minute, gauges as a random walk), each bucket
mixes two neighbouring samples; the tolerance is then one bucket's aggregation: the
appliance's value is within the largest change between consecutive samples of that
series around the window, for the instant selector and the ``*_over_time`` functions.
"""

from __future__ import annotations

import math
import time

import pytest
import requests

from appliance import tokens
from appliance.web.api import create_app
from tests.promserver import Prometheus, fleet_samples, load, openmetrics

REL = ABS = 1e-9
POINTS = 180

QUERIES = [
    # selectors and matchers
    'disk_usage',
    'disk_usage{device_name="sd001"}',
    'disk_usage{device_name!="sd001"}',
    'disk_usage{device_name=~"sd00[12]"}',
    'disk_usage{device_name!~"sd00[12]",host_name="host1"}',
    '{__name__="disk_free",host_name="host2"}',
    'disk_usage offset 10m',
    # counters
    'rate(disk_device_read_bytes_total[5m])',
    'irate(disk_device_read_bytes_total[5m])',
    'increase(disk_device_read_bytes_total[10m])',
    'rate(disk_device_read_bytes_total[5m] offset 7m)',
    # over time
    'avg_over_time(disk_usage[5m])',
    'min_over_time(disk_usage[10m])',
    'max_over_time(disk_usage[10m])',
    'sum_over_time(disk_free[5m])',
    'count_over_time(disk_free[7m])',
    'last_over_time(disk_usage[5m])',
    # aggregations
    'sum(disk_usage)',
    'avg by (host_name) (disk_usage)',
    'min without (device_name, resource_id, metric_id) (disk_usage)',
    'max by (host_name) (disk_free)',
    'count(disk_usage > 50)',
    'topk(3, disk_usage)',
    'bottomk by (host_name) (1, disk_free)',
    'sum by (host_name) (rate(disk_device_read_bytes_total[5m]))',
    # arithmetic and comparisons
    'disk_usage * 2 + 1',
    '100 - disk_usage',
    '-disk_usage',
    'disk_usage ^ 2 % 7',
    'disk_usage > 50',
    'disk_usage <= bool 50',
    '2 * 3 - 1',
    'disk_usage / on(resource_id) disk_free',
    'disk_free - ignoring(metric_id) disk_usage',
    'disk_usage > on(resource_id, device_name) disk_free / 5',
    'disk_usage == bool ignoring(metric_id) disk_usage',
    # functions
    'time()',
    'vector(3)',
    'scalar(sum(disk_usage)) / 100',
    'abs(disk_usage - 50)',
    'clamp_min(disk_usage, 20)',
    'clamp_max(disk_usage, 60)',
    'clamp(disk_usage, 20, 60)',
    'round(disk_free)',
    'round(disk_usage, 0.25)',
]


def _load_both(tmp, offset: int, walk: bool = False):
    """(appliance test client, prometheus URL, last sample time, stop) over the same
    samples, ``offset`` seconds after each minute."""
    from appliance import config
    from appliance.store import Store
    from tests.conftest import Rrdcached

    settings = config.parse({"data_dir": str(tmp / "data")}, "<test>")
    daemon = Rrdcached(settings)
    daemon.start()
    store = Store(settings)
    samples = fleet_samples(8, POINTS, time.time() - 180, offset=offset, walk=walk)
    load(store, samples)
    token = tokens.create(store.index, "admin", "admin")
    client = create_app(settings, store).test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    series = client.get("/api/v1/series", query_string={"match[]": '{__name__=~".+"}'})
    assert series.status_code == 200
    prom = Prometheus(tmp)
    prom.start(openmetrics(samples, series.get_json()["data"]))

    def stop() -> None:
        prom.stop()
        store.close()
        daemon.stop()

    return client, prom.url, max(s.timestamp for s in samples.samples), stop, samples


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """Samples on bucket boundaries."""
    client, url, last, stop, _ = _load_both(tmp_path_factory.mktemp("vs"), 0)
    yield client, url, last
    stop()


@pytest.fixture(scope="module")
def jittered(tmp_path_factory):
    """Samples 17 s after each minute (each bucket mixes two neighbouring samples), gauges
    moving by at most 1 per sample, so that "one bucket" is a tight tolerance."""
    client, url, last, stop, samples = _load_both(tmp_path_factory.mktemp("jitter"), 17,
                                                  walk=True)
    yield client, url, last, samples
    stop()


def _by_labels(result: list[dict], key: str) -> dict[frozenset, dict[float, float]]:
    out = {}
    for series in result:
        points = series[key] if key == "values" else [series["value"]]
        out[frozenset(series["metric"].items())] = {float(t): float(v) for t, v in points}
    return out


def _same(ours: dict, theirs: dict, query: str) -> None:
    assert ours.keys() == theirs.keys(), f"{query}: label sets differ"
    for labels, points in theirs.items():
        mine = ours[labels]
        assert mine.keys() == points.keys(), (
            f"{query} {dict(labels)}: timestamps differ: only ours "
            f"{sorted(set(mine) - set(points))[:5]}, only Prometheus "
            f"{sorted(set(points) - set(mine))[:5]}")
        for t, v in points.items():
            assert math.isclose(mine[t], v, rel_tol=REL, abs_tol=ABS), (
                f"{query} {dict(labels)} at {t}: appliance {mine[t]} Prometheus {v}")


@pytest.mark.slow
@pytest.mark.parametrize("shift", [0, 30])
@pytest.mark.parametrize("query", QUERIES)
def test_range_query_equals_prometheus(both, query, shift):
    client, prom, last = both
    params = {"query": query, "start": last - 150 * 60 + shift, "end": last - shift,
              "step": 60}
    ours = client.post("/api/v1/query_range", data=params)
    assert ours.status_code == 200, ours.get_json()
    theirs = requests.post(f"{prom}/api/v1/query_range", data=params, timeout=30).json()
    assert theirs["status"] == "success", theirs
    assert ours.get_json()["data"]["resultType"] == "matrix"
    _same(_by_labels(ours.get_json()["data"]["result"], "values"),
          _by_labels(theirs["data"]["result"], "values"), query)


@pytest.mark.slow
@pytest.mark.parametrize("query", QUERIES)
def test_instant_query_equals_prometheus(both, query):
    client, prom, last = both
    params = {"query": query, "time": last - 3600 + 17}
    ours = client.post("/api/v1/query", data=params).get_json()
    theirs = requests.post(f"{prom}/api/v1/query", data=params, timeout=30).json()
    assert ours["data"]["resultType"] == theirs["data"]["resultType"]
    if theirs["data"]["resultType"] == "scalar":
        assert math.isclose(float(ours["data"]["result"][1]),
                            float(theirs["data"]["result"][1]), rel_tol=REL, abs_tol=ABS)
        return
    _same(_by_labels(ours["data"]["result"], "value"),
          _by_labels(theirs["data"]["result"], "value"), query)


#: Gauge queries compared on samples off the bucket boundaries.
JITTERED = ["disk_usage", "avg_over_time(disk_usage[5m])", "min_over_time(disk_free[10m])",
            "max_over_time(disk_free[10m])", "last_over_time(disk_usage[5m])"]


@pytest.mark.slow
@pytest.mark.parametrize("query", JITTERED)
def test_off_boundary_samples_agree_within_one_bucket(jittered, query):
    """Tolerance off the boundaries: the appliance's value differs from Prometheus' by at
    most the largest change between two consecutive samples of that series in the window
    (plus the bucket before and after it): one bucket's aggregation."""
    client, prom, last, samples = jittered
    params = {"query": query, "start": last - 150 * 60, "end": last - 600, "step": 60}
    ours = client.post("/api/v1/query_range", data=params).get_json()
    theirs = requests.post(f"{prom}/api/v1/query_range", data=params, timeout=30).json()
    ours_by, theirs_by = (_by_labels(ours["data"]["result"], "values"),
                          _by_labels(theirs["data"]["result"], "values"))
    assert ours_by.keys() == theirs_by.keys()
    values: dict[str, list[tuple[float, float]]] = {}
    for s in samples.samples:
        values.setdefault(f"{s.resource.id} {s.metric_name}", []).append((s.timestamp, s.value))
    span = 600 + 120
    worst = 0.0
    for labels, points in theirs_by.items():
        meter = "disk.usage" if "usage" in query else "disk.free"
        series = values[f"{dict(labels)['resource_id']} {meter}"]
        common = points.keys() & ours_by[labels].keys()
        assert len(common) >= 0.9 * len(points), (query, len(common), len(points))
        for t in common:
            near = [v for ts, v in series if t - span <= ts <= t + 60]
            bound = max(abs(a - b) for a, b in zip(near, near[1:], strict=False))
            assert abs(ours_by[labels][t] - points[t]) <= bound + 1e-9, (
                query, dict(labels), t, ours_by[labels][t], points[t], bound)
            worst = max(worst, abs(ours_by[labels][t] - points[t]))
    assert 0 < worst <= 1  # the buckets do differ from the samples, by less than one step
