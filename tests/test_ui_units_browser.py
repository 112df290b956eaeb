"""Readable units and names on the status page, in chromium, against ``appliance run``.

The host pollster meters this machine (its loop and zram devices included, which must not
show); the page must show Ceilometer's KB as GiB, a load as a plain number, a CPU share in
%, a rate per second, rows named by their device or mountpoint, The API keeps
Ceilometer's units. (A young chart's "first point due" is in tests/test_ui.py, where the
clock can be pinned.)
"""

from __future__ import annotations

import re
from pathlib import Path

import requests
from playwright import sync_api

from tests.conftest import wait_for
from tests.test_ui_browser import CHROMIUM, CHROMIUM_ARGS


def _metric(app, resource_type: str, name: str) -> dict | None:
    rows = requests.get(f"{app.url}/v1/resource/{resource_type}", headers=app.headers,
                        timeout=5).json()
    for row in rows:
        if name in row["metrics"]:
            return {"resource": row, "id": row["metrics"][name]}
    return None


def _svg(page, url: str) -> str | None:
    """The text of a chart once it has a value."""
    response = page.request.get(url)
    assert response.ok
    return response.text() if response.headers["x-chart-last"] != "none" else None


def _texts(svg: str) -> str:
    """What the chart says in words (rrdtool draws glyphs; the chart's title repeats it)."""
    return re.search(r"<title>([^<]*)</title>", svg).group(1)


def test_units_names_and_young_charts(appliance_factory, tmp_path):
    app = appliance_factory({"archive_policy_rules": [{"pattern": "*", "policy": "high"}]})
    disks = {line.split()[2] for line in Path("/proc/diskstats").read_text().splitlines()}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(app.url + "/login")
        page.fill("#token", app.token)
        page.click("button[type=submit]")
        page.wait_for_url(app.url + "/")

        memory = wait_for(lambda: _metric(app, "host", "hardware.memory.total"), timeout=30,
                          what="the host's memory metric")
        # The API keeps Ceilometer's unit.
        shown = requests.get(f"{app.url}/v1/metric/{memory['id']}", headers=app.headers,
                             timeout=5).json()
        assert shown["unit"] == "KB"

        def chart(name: str) -> str | None:
            mid = memory["resource"]["metrics"][name]
            return _svg(page, f"{app.url}/ui/chart/{mid}.svg?range=1h")

        total = _texts(wait_for(lambda: chart("hardware.memory.total"), timeout=60,
                                what="a memory chart with data"))
        assert re.search(r"now \d+(\.\d)? (GiB|MiB)", total), total
        assert "KB" not in total
        load = _texts(wait_for(lambda: chart("hardware.cpu.load.1min"), timeout=30,
                               what="a load chart"))
        assert re.search(r"now \d+(\.\d+)?(e[-+]\d+)? ", load + " "), load
        assert "process" not in load and not re.search(r"\d m", load), load
        util = _texts(wait_for(lambda: chart("hardware.cpu.util"), timeout=30,
                               what="a CPU chart"))
        assert re.search(r"now \d+(\.\d+)? %", util) and "m%" not in util, util

        nic = wait_for(lambda: _metric(app, "host_network_interface",
                                       "hardware.network.incoming.bytes"),
                       timeout=30, what="a NIC")
        rate = _texts(wait_for(
            lambda: _svg(page, f"{app.url}/ui/chart/{nic['id']}.svg?range=1h"), timeout=60,
            what="a NIC traffic chart"))
        assert re.search(r"now \d+(\.\d+)? (B|KiB|MiB)/s", rate), rate

        # Rows are named by what tells them apart; loop, ram and zram devices are left out.
        page.goto(app.url + "/resources?type=host_disk")
        names = page.locator("#resource-list tbody tr td:first-child a").all_inner_texts()
        expected = {d for d in disks if not re.match(r"(z?ram|loop|fd)\d+$", d)
                    and not re.match(r"((h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$", d)}
        assert set(names) == expected and expected, (names, disks)
        page.goto(app.url + "/resources?type=host_filesystem")
        mounts = page.locator("#resource-list tbody tr td:first-child a").all_inner_texts()
        assert "/" in mounts
        page.goto(app.url + "/resources?type=host")
        value = page.locator("#resource-list td.num .value").first.inner_text()
        assert value.endswith(" %"), value  # the host's headline is hardware.cpu.util

        browser.close()
