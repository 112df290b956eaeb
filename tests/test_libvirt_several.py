"""Several libvirt URIs, each a target (the unit a partitioned appliance takes or leaves)."""

from __future__ import annotations

import time

from appliance import config, pollsters
from tests.test_libvirt import domain_uuid, domain_xml


def node(tmp_path, name: str, first: int, count: int) -> str:
    path = tmp_path / f"{name}.xml"
    path.write_text("<node>" + "".join(domain_xml(i) for i in range(first, first + count))
                    + "</node>")
    return f"test://{path}"


def instances(result) -> set[str]:
    return {s.resource.id for s in result.samples if s.resource.type == "instance"}


def test_each_uri_is_a_target_polled_on_its_own(tmp_path):
    a, b = node(tmp_path, "a", 0, 3), node(tmp_path, "b", 100, 2)
    settings = config.parse({"pollsters": {"libvirt": {"uris": [a, b], "domain_timeout": 10,
                                                       "lifecycle_events": False}}})
    p = pollsters.build("libvirt", settings)
    try:
        assert list(p.targets()) == [a, b]
        both = p.poll(p.targets(), time.monotonic() + 30)
        assert {r.target for r in both.reports} == {a, b} and all(r.ok for r in both.reports)
        assert instances(both) == {domain_uuid(i) for i in (0, 1, 2, 100, 101)}
        only_b = p.poll([b], time.monotonic() + 30)
        assert [r.target for r in only_b.reports] == [b]
        assert instances(only_b) == {domain_uuid(100), domain_uuid(101)}
    finally:
        p.close()


def test_one_uri_stays_the_single_target():
    settings = config.parse({"pollsters": {"libvirt": {"uri": "test:///default",
                                                       "lifecycle_events": False}}})
    p = pollsters.build("libvirt", settings)
    try:
        assert list(p.targets()) == ["test:///default"]
    finally:
        p.close()
