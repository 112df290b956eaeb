"""What an operator sees of coordination and publishing: /v1/status, /metrics, the status page.

A real tooz member over a real Redis and a real publisher to a receiver that is down write
their state; the API process shows it without joining anything itself.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from appliance import config, coordination, publishers
from appliance.model import Kind, PollResult, Resource, Sample
from appliance.store import Store
from appliance.web.api import create_app
from tests import engines
from tests.conftest import free_port, wait_for


def test_single_node_never_imports_tooz():
    code = ("import sys\n"
            "from appliance import config, coordination, publishers\n"
            "s = config.parse({})\n"
            "assert coordination.share(s, 'snmp').mine(['a', 'b']) == ['a', 'b']\n"
            "assert publishers.build(s, 'snmp', None) == []\n"
            "assert 'tooz' not in sys.modules and 'cramjam' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture
def redis_url(tmp_path):
    engine, url = engines.redis(tmp_path / "redis")
    yield url + "?timeout=2"
    engine.stop()


def test_status_metrics_and_page_show_the_group_and_the_publishers(rrdcached, settings,
                                                                    redis_url):
    dead = f"http://127.0.0.1:{free_port()}/api/v1/write"
    settings = config.parse({
        "data_dir": str(settings.data_dir), "api": {"open_read": True},
        "coordination": {"backend_url": redis_url, "member_id": "box-1", "refresh": 0.2},
        "publishers": [{"kind": "prometheus_remote_write", "url": dead, "max_backoff": 1}],
    }, "<test>")
    store = Store(settings)
    share = coordination.share(settings, "snmp")
    [publisher] = publishers.build(settings, "snmp", store)
    try:
        assert share.mine([f"sw{i}" for i in range(10)]) == [f"sw{i}" for i in range(10)]
        sample = Sample(Resource.from_key("host", "host://x", {"host_name": "x"}), "cpu", "ns",
                        Kind.CUMULATIVE, 1.0, 1.7e9)
        result = PollResult(samples=[sample])
        store.write(result)
        publisher(result)
        wait_for(lambda: publisher.failures >= 1, timeout=10, what="a failed send")
        publisher.close(grace=0.1)

        client = create_app(settings, store).test_client()
        status = client.get("/v1/status").json["appliance"]
        [group] = status["coordination"]["groups"]
        assert status["coordination"]["member"] == "box-1"
        assert group["group"] == "appliance.snmp" and group["members"] == ["box-1"]
        assert group["connected"] and len(group["owned"]) == 10
        assert "redis://" not in str(status)  # only the scheme: a URL may hold a password
        [pub] = status["publishers"]
        assert pub["backlog"] == 1 and pub["last_success"] is None and pub["failures"] >= 1

        text = client.get("/metrics").get_data(as_text=True)
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for f in text_string_to_metric_families(text) for s in f.samples}
        assert samples[("appliance_coordination_owned", (("group", "appliance.snmp"),))] == 10
        assert samples[("appliance_publisher_backlog",
                        (("publisher", f"prometheus_remote_write {dead}"),))] == 1

        page = client.get("/").get_data(as_text=True)
        assert "appliance.snmp" in page and "box-1" in page and "10 of 10" in page
        assert f"prometheus_remote_write {dead}" in page and "never" in page
    finally:
        share.close()
        store.close()


def test_file_backend_splits_targets_and_a_member_leaving_hands_them_over(tmp_path):
    """tooz's file:// driver (several appliances on one host): two members, then one."""
    def member(name: str):
        return coordination.share(config.parse({
            "data_dir": str(tmp_path / name),
            "coordination": {"backend_url": f"file://{tmp_path / 'tooz'}", "member_id": name,
                             "refresh": 0.1}}), "alarms")
    targets = [f"alarm-{i}" for i in range(40)]
    one, two = member("one"), member("two")
    try:
        wait_for(lambda: len(one.members) == 2 and len(two.members) == 2, timeout=10,
                 what="both members to see each other")
        mine_one, mine_two = one.mine(targets), two.mine(targets)
        assert sorted(mine_one + mine_two) == sorted(targets) and mine_one and mine_two
        two.close()
        wait_for(lambda: one.mine(targets) == targets, timeout=10,
                 what="the leaver's alarms to come back")
    finally:
        one.close()


def test_a_full_queue_drops_the_oldest_and_counts_them(rrdcached, settings):
    dead = f"http://127.0.0.1:{free_port()}/api/v1/write"
    cfg = config.parse({"data_dir": str(settings.data_dir), "publishers": [
        {"kind": "prometheus_remote_write", "url": dead, "max_queue": 3, "max_backoff": 60}]},
        "<test>")
    store = Store(cfg)
    [publisher] = publishers.build(cfg, "snmp", store)
    try:
        resource = Resource.from_key("host", "host://x", {"host_name": "x"})
        for i in range(5):
            result = PollResult(samples=[Sample(resource, "load", "", Kind.GAUGE, float(i),
                                                1.7e9 + i)])
            store.write(result)
            publisher(result)
        wait_for(lambda: publisher.failures >= 1, timeout=10, what="a failed send")
        assert publisher.backlog() == 3 and publisher.dropped == 2 and publisher.sent == 0
    finally:
        publisher.close(grace=0.1)
        store.close()


@pytest.mark.parametrize(("data", "key"), [
    ({"publishers": [{"kind": "carrier-pigeon", "url": "http://x"}]}, "publishers.0"),
    ({"publishers": [{"kind": "gnocchi", "url": "ftp://x"}]}, "publishers.0.gnocchi.url"),
    ({"coordination": {"member_id": "has space"}}, "coordination.member_id"),
    ({"receivers": {"max_decompressed_bytes": 10}}, "receivers.max_decompressed_bytes"),
])
def test_malformed_scaleout_config_names_the_key(data, key):
    with pytest.raises(config.ConfigError) as err:
        config.parse(data, "x.yaml")
    assert f"x.yaml: {key}:" in str(err.value)


def test_the_backend_url_is_a_secret_in_the_printed_config():
    s = config.parse({"coordination": {"backend_url": "redis://:hunter2@r:6379"}})
    assert "hunter2" not in str(config.effective(s))
