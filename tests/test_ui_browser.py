"""The status page in a real browser (Debian's chromium, headless) against ``appliance run``.

One appliance serves the whole walk, because starting one costs seconds of the shared
machine: sign in with the token, the overview without console errors, the host's page with
charts that carry data, the time-range selector, screenshots, and sign out.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import requests
from playwright import sync_api

from tests.conftest import wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
DOCS = Path(__file__).resolve().parent.parent / "docs"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _host_id(app) -> str:
    rows = requests.get(f"{app.url}/v1/resource/host", headers=app.headers, timeout=5).json()
    return rows[0]["id"] if rows else ""


def _chart_with_data(page, url: str, metric: str) -> dict | None:
    """The headers of the chart of ``metric`` on the page at ``url``, once it shows a value."""
    page.goto(url)
    img = page.locator(f'img.chart[data-metric="{metric}"]')
    response = page.request.get(img.evaluate("i => i.src"))
    assert response.ok and response.headers["content-type"].startswith("image/svg+xml")
    return response.headers if response.headers["x-chart-last"] != "none" else None


def test_status_page_in_a_browser(appliance_factory, browser, tmp_path):
    # The high policy keeps 1 s points, so a 2 s host poll shows on a chart within seconds.
    app = appliance_factory({"archive_policy_rules": [{"pattern": "*", "policy": "high"}]})
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    # Reading needs a token (open_read is off): the overview sends us to the sign-in page.
    page.goto(app.url + "/")
    assert "/login" in page.url
    page.fill("#token", "not-a-valid-token-at-all")
    page.click("button[type=submit]")
    assert page.locator("[role=alert]").inner_text() == "That token is not valid."
    page.fill("#token", app.token)
    page.click("button[type=submit]")
    page.wait_for_url(app.url + "/")
    cookie = next(c for c in page.context.cookies() if c["name"] == "appliance_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    errors.clear()  # the refused sign-in answered 401, which chromium logs as an error

    # The overview: processes from supervisord, the host source's health, counts.
    wait_for(lambda: page.reload() or "host" in page.locator("#sources").inner_text(),
             timeout=30, what="the host source on the overview")
    processes = page.locator("#processes").inner_text()
    for name in ("rrdcached", "api", "poll-host"):
        assert name in processes
    assert "running" in processes
    assert "No alarms configured." in page.inner_text("main") or "alarm" in page.inner_text("main")

    # The host's page: a chart per metric, with data once a few polls have landed.
    host = wait_for(lambda: _host_id(app), timeout=30, what="the host resource")
    resource_url = f"{app.url}/resources/{host}"
    hour = wait_for(lambda: _chart_with_data(page, resource_url, "hardware.cpu.load.1min"),
                    timeout=60, what="a CPU load chart with data")
    assert page.locator("img.chart").count() >= 10
    assert float(hour["x-chart-last"]) >= 0
    assert hour["x-chart-range"] == "1h" and hour["x-chart-granularity"] == "1"  # the default
    # The metric is seconds old: its chart covers its life (5 min), not an empty hour.
    assert int(hour["x-chart-end"]) - int(hour["x-chart-start"]) == 300

    # The selector redraws the charts for another range, at that range's granularity.
    for label, key, seconds, granularity in (("1 d", "1d", 86400, "60"),
                                            ("1 y", "1y", 365 * 86400, "3600")):
        page.click(f"nav.ranges >> text={label}")
        page.wait_for_url(f"**range={key}**")
        chart = page.locator('img.chart[data-metric="hardware.cpu.load.1min"]')
        assert f"range={key}" in chart.get_attribute("src")
        drawn = page.request.get(chart.evaluate("i => i.src")).headers
        assert drawn["x-chart-range"] == key and drawn["x-chart-granularity"] == granularity
        assert int(drawn["x-chart-end"]) - int(drawn["x-chart-start"]) <= seconds

    # Screenshots (the README shows them): the overview, and the host on the 1 h range.
    page.goto(resource_url)
    page.wait_for_function(
        "() => [...document.querySelectorAll('img.chart')].slice(0, 4)"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    shown = page.locator('img.chart[data-metric="hardware.cpu.load.1min"]').evaluate("i => i.src")
    assert page.request.get(shown).headers["x-chart-last"] != "none"
    page.screenshot(path=str(tmp_path / "resource.png"))
    page.goto(app.url + "/")
    # The page refreshes itself in place (a fetch loop, no reload): the footer's time moves.
    page.evaluate("document.getElementById('main').dataset.marker = 'kept'")
    footer = page.inner_text("footer")
    page.wait_for_function("t => document.querySelector('footer').innerText !== t", arg=footer,
                           timeout=40_000)
    assert page.evaluate("document.getElementById('main').dataset.marker") == "kept"
    page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)
    for name in ("overview.png", "resource.png"):
        assert (tmp_path / name).stat().st_size > 10_000
        # The README's screenshots: refreshed on request (make screenshots), so that a test
        # run never dirties the work tree.
        if os.environ.get("UPDATE_SCREENSHOTS") == "1":
            DOCS.mkdir(exist_ok=True)
            shutil.copyfile(tmp_path / name, DOCS / name)

    # On a phone the pages reflow instead of scrolling sideways.
    phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    phone.context.add_cookies(page.context.cookies())
    for url in (app.url + "/", resource_url, app.url + "/resources"):
        phone.goto(url)
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), url
    phone.goto(app.url + "/")
    phone.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    phone.close()

    # The resource list finds the host by name and shows its current value.
    page.goto(app.url + "/resources?type=host")
    assert page.locator("#resource-list td.num .value").first.inner_text() != "–"

    assert errors == []

    # Sign out (a POST with the CSRF token); the pages need a sign-in again.
    page.click("form.logout button")
    page.wait_for_url("**/login")
    page.goto(app.url + "/resources")
    assert "/login" in page.url
