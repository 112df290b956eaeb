"""The status page over a real store (SQLite index, rrdcached, RRD files), through Flask.

What the browser test cannot reach cheaply: an empty appliance, a resource with hundreds
of metrics, a failing source, the attribute timeline, alarms, and the session's rules
(CSRF, cookie flags, the generated key).
"""

from __future__ import annotations

import re
import stat
import time

import pytest

from appliance import config, tokens
from appliance.model import Kind, PollResult, Resource, Sample, TargetReport
from appliance.storage.policy import BUILTIN_POLICIES
from appliance.web.api import create_app
from appliance.web.ui import charts, formatting, login


def make_app(store, **api):
    settings = config.parse(
        {"data_dir": str(store.settings.data_dir), "api": api}, "<test>"
    )
    app = create_app(settings, store)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(store):
    return make_app(store, open_read=True).test_client()


def csrf(client, url: str) -> str:
    html = client.get(url).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def host(name: str = "web-1", **attrs) -> Resource:
    return Resource.from_key("host", f"host://{name}", {"host_name": name, **attrs})


def seed(store, resource: Resource, metrics: int, points: int = 10, kind=Kind.GAUGE) -> None:
    """``metrics`` metrics on ``resource``, a point a minute for the last ``points`` minutes."""
    now = int(time.time()) // 60 * 60
    samples = [
        Sample(resource, f"synthetic.metric.{i:03d}", "B", kind, float(i * 1000 + t * 60),
               now - (points - t) * 60)
        for i in range(metrics)
        for t in range(points)
    ]
    result = store.write(PollResult(samples=samples))
    assert not result.rejected


# --- an empty appliance ---------------------------------------------------------------------


def test_every_page_renders_on_an_empty_appliance(client):
    overview = client.get("/")
    assert overview.status_code == 200
    page = overview.get_data(as_text=True)
    assert "No alarms configured." in page
    assert "Nothing measured yet" in page
    assert "waiting for the first poll" in page  # host is enabled but has not reported
    # Not under supervisord here: said plainly, not an error page.
    assert "supervisord is not running" in page
    assert "No resources yet" in client.get("/resources").get_data(as_text=True)
    assert "No alarms configured." in client.get("/alarms").get_data(as_text=True)
    missing = client.get("/resources/not-a-resource")
    assert missing.status_code == 404 and "No such resource." in missing.get_data(as_text=True)
    assert missing.mimetype == "text/html"
    assert client.get("/ui/chart/not-a-metric.svg").status_code == 404
    assert client.get("/ui/static/ui.css").status_code == 200


def test_pages_send_security_headers(client):
    response = client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    # Everything the page loads comes from the appliance itself.
    assert not re.search(r'(src|href)="(https?:)?//', response.get_data(as_text=True))


# --- resources ------------------------------------------------------------------------------


def test_a_resource_with_hundreds_of_metrics_renders_in_steps(client, store):
    big = host("big-box")
    seed(store, big, metrics=300)
    page = client.get(f"/resources/{big.id}").get_data(as_text=True)
    assert page.count('<img class="chart"') == 24
    assert page.count('loading="lazy"') == 24
    assert "Showing 24 of 300" in page and "Show 24 more" in page

    more = client.get(f"/resources/{big.id}?show=48").get_data(as_text=True)
    assert more.count('<img class="chart"') == 48

    filtered = client.get(f"/resources/{big.id}?q=metric.29").get_data(as_text=True)
    assert filtered.count('<img class="chart"') == 10  # 290..299
    assert "Showing 10 of 10 matching" in filtered

    everything = client.get(f"/resources/{big.id}?show=1000").get_data(as_text=True)
    assert everything.count('<img class="chart"') == 300
    assert 'id="show-more"' not in everything


def test_chart_draws_the_metric_at_the_ranges_granularity(client, store):
    box = host("chart-box")
    seed(store, box, metrics=1)
    metric = store.index.metrics(resource_id=box.id)[0]
    hour = client.get(f"/ui/chart/{metric.id}.svg?range=1h")
    assert hour.status_code == 200 and hour.mimetype == "image/svg+xml"
    assert hour.data.startswith(b"<?xml") and b"<svg" in hour.data[:300]
    assert hour.headers["X-Chart-Granularity"] == "60"
    assert float(hour.headers["X-Chart-Last"]) == 540.0  # the newest point seeded
    # Ten minutes of data: the chart narrows to the metric's life (30 points at least).
    assert int(hour.headers["X-Chart-End"]) - int(hour.headers["X-Chart-Start"]) == 1800
    day = client.get(f"/ui/chart/{metric.id}.svg?range=1d")
    assert day.headers["X-Chart-Range"] == "1d" and day.headers["X-Chart-Granularity"] == "60"
    assert int(day.headers["X-Chart-End"]) - int(day.headers["X-Chart-Start"]) == 1800
    year = client.get(f"/ui/chart/{metric.id}.svg?range=1y")
    assert year.headers["X-Chart-Granularity"] == "3600"
    assert client.get(f"/ui/chart/{metric.id}.svg?range=5y").status_code == 400
    zipped = client.get(f"/ui/chart/{metric.id}.svg", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"


@pytest.mark.parametrize("policy", ["high", "medium"])
def test_the_newest_measure_is_on_the_chart(client, store, policy):
    # Measures are stored one step after their timestamp: the chart must still reach them.
    box = host(f"fresh-{policy}")
    store.index.ensure_resources([box])
    metric = store.index.create_metric("hardware.cpu.util", "%", box.id, policy)
    step = store.index.policy(policy).step
    now = int(time.time()) // step * step
    # A minute of 1 s points (rrdtool draws seconds per pixel), or three 1 min points.
    values = [30.0] * 60 if step == 1 else [10.0, 20.0, 30.0]
    store.write_measures([(metric, [(now - step * (len(values) - 1 - i), v)
                                    for i, v in enumerate(values)])])
    chart = client.get(f"/ui/chart/{metric.id}.svg?range=1h")
    assert float(chart.headers["X-Chart-Last"]) == 30.0
    listing = client.get(f"/resources?q=fresh-{policy}").get_data(as_text=True)
    assert "30 %" in listing


def test_a_young_chart_says_when_its_first_point_is_due(client, store):
    nic = Resource.from_key("host_network_interface", "host://web-1/eth9",
                            {"host_name": "web-1", "device_name": "eth9"})
    minute = int(time.time()) // 60 * 60 + 60  # the next minute: no bucket is complete yet
    # A counter's first measure has no rate; its second gives the 1 min bucket a value
    # once a measure reaches the bucket's end.
    store.write(PollResult(samples=[
        Sample(nic, "hardware.network.incoming.bytes", "B", Kind.CUMULATIVE, v, minute + t)
        for t, v in ((5, 0.0), (7, 100.0))
    ]))
    metric = store.index.metrics(resource_id=nic.id)[0]
    drawn = charts.render(store.measures, metric, store.index.policy(metric.archive_policy_name),
                          "1h", now=minute + 8)
    assert drawn.last is None
    due = time.strftime("%H:%M:%S", time.gmtime(minute + 60))
    assert f"first 1 min point due at {due} UTC (in 52.0 s)".encode() in drawn.svg


def test_counters_are_shown_as_rates(client, store):
    nic = Resource.from_key("host_network_interface", "host://web-1/eth0",
                            {"host_name": "web-1", "device_name": "eth0"})
    now = int(time.time()) // 60 * 60
    # 6 MB a minute: 100 kB/s.
    samples = [Sample(nic, "hardware.network.incoming.bytes", "B", Kind.CUMULATIVE,
                      float(t * 6_000_000), now - (10 - t) * 60) for t in range(10)]
    store.write(PollResult(samples=samples))
    metric = store.index.metrics(resource_id=nic.id)[0]
    chart = client.get(f"/ui/chart/{metric.id}.svg?range=1h")
    assert float(chart.headers["X-Chart-Last"]) == pytest.approx(100_000)
    page = client.get(f"/resources/{nic.id}").get_data(as_text=True)
    assert "rate · B/s" in page
    listing = client.get("/resources?type=host_network_interface").get_data(as_text=True)
    assert "97.7 KiB/s" in listing  # 100 000 B/s, the headline value of an interface


def test_resource_list_searches_and_pages(client, store):
    for i in range(60):
        store.index.ensure_resources([host(f"node-{i:02d}")])
    store.index.ensure_resources([host("database-primary")])
    first = client.get("/resources?type=host").get_data(as_text=True)
    assert first.count("/resources/") >= 50 and 'rel="next"' in first
    names = re.findall(r'>(node-\d\d)</a>', first)
    assert names == sorted(names) and len(names) == 49  # by source key: database-primary first
    second = client.get(re.search(r'href="([^"]+)" rel="next"', first).group(1).replace(
        "&amp;", "&")).get_data(as_text=True)
    assert re.findall(r'>(node-\d\d)</a>', second) == [f"node-{i}" for i in range(49, 60)]
    found = client.get("/resources?q=database").get_data(as_text=True)
    assert "database-primary" in found and "node-01" not in found
    nothing = client.get("/resources?q=%25_nomatch").get_data(as_text=True)
    assert "No resource matches" in nothing


def test_resource_page_shows_the_attribute_timeline(client, store):
    vm = Resource.from_key("instance", "libvirt://vm-1", {"name": "vm-1", "state": "running"})
    store.index.ensure_resources([vm], now=time.time() - 60)
    vm.attributes["state"] = "shutoff"
    store.index.ensure_resources([vm])
    page = client.get(f"/resources/{vm.id}").get_data(as_text=True)
    timeline = page.split('id="history"')[1].split("</ol>")[0]
    assert "state" in timeline and "running" in timeline and "shutoff" in timeline
    assert timeline.index("shutoff") < timeline.index("first seen")  # newest first
    assert "This resource has no metrics yet." in page


def test_pages_survive_rrdcached_being_down(client, store, rrdcached):
    box = host("lonely-box")
    seed(store, box, metrics=2)
    metric = store.index.metrics(resource_id=box.id)[0]
    rrdcached.kill()
    assert client.get("/resources").status_code == 200
    assert client.get(f"/resources/{box.id}").status_code == 200
    chart = client.get(f"/ui/chart/{metric.id}.svg")
    assert chart.status_code == 200 and chart.mimetype == "image/svg+xml"


# --- health ---------------------------------------------------------------------------------


def test_an_unavailable_source_is_shown_with_its_error(client, store):
    now = time.time()
    store.index.record_reports([
        TargetReport("host", "localhost", now, 0.01, samples=42),
        TargetReport("snmp", "core-switch", now, 2.0,
                     error="timeout: no SNMP response from 192.0.2.10:161"),
    ])
    page = client.get("/").get_data(as_text=True)
    sources = page.split('id="sources"')[1].split("</table>")[0]
    assert "timeout: no SNMP response from 192.0.2.10:161" in sources
    assert '<span class="pill bad">error</span>' in sources
    assert '<span class="pill ok">ok</span>' in sources


def test_alarms_are_listed_with_state_and_history(client, store):
    from appliance.alarms import model as alarm_model
    from appliance.alarms import store as alarm_store

    now = time.time()
    alarm = alarm_model.parse_alarm({
        "name": "disk-almost-full",
        "type": "gnocchi_aggregation_by_metrics_threshold",
        "gnocchi_aggregation_by_metrics_threshold_rule": {
            "metrics": ["5f0c3a52-9d71-4b55-8a0e-1e2a3b4c5d6e"], "threshold": 90,
            "comparison_operator": "gt",
        },
    }, now - 120)
    alarms = alarm_store.AlarmStore(store.index)
    alarms.create(alarm)
    alarms.record([alarm_store.Transition(alarm.alarm_id, "low", "insufficient data", "alarm",
                                          "Transition to alarm due to 1 samples outside", {},
                                          now)])
    overview = client.get("/").get_data(as_text=True)
    assert "disk-almost-full" in overview and "No alarms configured." not in overview
    page = client.get("/alarms").get_data(as_text=True)
    assert '<span class="pill bad">alarm</span>' in page
    history = page.split('id="alarm-history"')[1]
    assert "state transition" in history and "creation" in history


# --- sign-in --------------------------------------------------------------------------------


def test_sign_in_and_out_with_a_token_and_csrf(store):
    app = make_app(store, open_read=False)
    token = tokens.create(store.index, "ops", "reader")
    c = app.test_client()
    assert c.get("/").status_code == 302
    assert c.get("/resources").headers["Location"].startswith("/login?next=/resources")

    # A form post without this session's CSRF token is refused, whatever it carries.
    assert c.post("/login", data={"token": token}).status_code == 400
    form = csrf(c, "/login")
    assert c.post("/login", data={"token": "wrong" * 5, "csrf_token": form}).status_code == 401
    signed = c.post("/login", data={"token": token, "csrf_token": form, "next": "//evil.test/"})
    assert signed.status_code == 302 and signed.headers["Location"] == "/"  # no open redirect
    cookie = signed.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and token not in cookie
    assert c.get("/").status_code == 200

    assert c.post("/logout").status_code == 400  # no CSRF token: still signed in
    assert c.get("/").status_code == 200
    out = c.post("/logout", data={"csrf_token": csrf(c, "/")})
    assert out.status_code == 302 and c.get("/").status_code == 302

    # A revoked token's session ends at the next request.
    form = csrf(c, "/login")
    c.post("/login", data={"token": token, "csrf_token": form})
    assert c.get("/").status_code == 200
    tokens.revoke(store.index, "ops")
    assert c.get("/").status_code == 302


def test_session_key_is_generated_once_and_private(store):
    make_app(store)
    path = store.settings.data_dir / login.SESSION_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_bytes()
    make_app(store)  # a second worker reads the same key
    assert path.read_bytes() == first and len(first.strip()) == 64


def test_configured_secret_key_is_used(store):
    app = make_app(store, secret_key="s" * 32)
    assert app.secret_key == b"s" * 32
    assert not (store.settings.data_dir / login.SESSION_KEY_FILE).exists()


# --- pure helpers ---------------------------------------------------------------------------


def test_ranges_use_the_finest_covering_granularity():
    medium, high, low = (BUILTIN_POLICIES[n] for n in ("medium", "high", "low"))
    assert charts.granularity_for(high, 3600) == 1
    assert charts.granularity_for(high, 86400) == 60
    assert charts.granularity_for(medium, 3600) == 60
    assert charts.granularity_for(medium, 365 * 86400) == 3600
    assert charts.granularity_for(low, 365 * 86400) == 300  # the longest it keeps


def test_a_young_metrics_chart_narrows_to_its_life():
    end = 1_800_000_000
    assert charts.window("1h", 60, end, end - 7200) == (end - 3600, "last 1 hour at 1 min")
    assert charts.window("1h", 1, end, end - 20) == (
        end - 300, "last 5 min (new metric) at 1 s")
    assert charts.window("1d", 60, end, end - 7200) == (
        end - 7260, "last 2 h 1 min (new metric) at 1 min")
    assert charts.window("1y", 3600, end, end - 400 * 86400)[0] == end - 365 * 86400


def test_formatting():
    assert formatting.number(1234567) == "1.23 M"
    assert formatting.number(100_000, "B/s") == "97.7 KiB/s"
    assert formatting.number(2048, "KB") == "2.0 MiB"
    assert formatting.number(42, "%") == "42 %"
    # Ceilometer's units, as a person reads them (the API keeps KB, process, ns).
    assert formatting.number(24.09e6, "KB") == "23.0 GiB"
    assert formatting.number(0.296, "process") == "0.296"
    assert formatting.number(0.347, "%") == "0.347 %"
    assert formatting.number(3.5e8, "ns/s") == "35 %"  # a CPU's busy share
    assert formatting.number(1500, "packet/s") == "1.5 k packet/s"
    assert formatting.number(0.5, "V") == "0.5 V" and formatting.number(2500, "W") == "2.5 kW"
    assert formatting.unit_label("KB") == "B" and formatting.unit_label("process") == ""
    assert formatting.number(float("nan")) == "–"
    assert formatting.span(0.034) == "34 ms" and formatting.span(5000) == "1 h 23 min"
    assert formatting.ago(None) == "never" and formatting.ago(100, now=130) == "30 s ago"
    assert formatting.attribute(1795303292.0, "boot_time").endswith("UTC")
    assert formatting.attribute(2, "cpu_count") == 2


def test_the_api_graph_and_the_status_page_chart_agree(store):
    # One renderer, one time convention: a measure is stored a step after its timestamp,
    # and both the API's graph (ending now) and the chart still show it as the newest value.
    admin = tokens.create(store.index, "grapher", "admin")
    client = make_app(store, open_read=True).test_client()
    box = host("graph-box")
    store.index.ensure_resources([box])
    metric = store.index.create_metric("hardware.cpu.util", "%", box.id, "medium")
    now = int(time.time()) // 60 * 60
    store.write_measures([(metric, [(now - 120, 10.0), (now - 60, 20.0), (now, 30.0)])])
    chart = client.get(f"/ui/chart/{metric.id}.svg?range=1h")
    # Ending at the newest measure's own timestamp (a minute boundary): that bucket is still
    # drawn, as the chart draws it.
    graph = client.get(f"/v1/metric/{metric.id}/graph.svg?start=-1h&stop={now}",
                       headers={"Authorization": f"Bearer {admin}"})
    assert chart.status_code == graph.status_code == 200
    assert float(chart.headers["X-Chart-Last"]) == 30.0
    # The newest value each drew (rrdtool's PRINT of the line's LAST).
    assert float(chart.headers["X-Chart-Last"]) == float(graph.headers["X-Graph-Last"]) == 30.0
