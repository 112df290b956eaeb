"""The SQLite index on its own: migrations, policy rules, metrics, pagination."""

from __future__ import annotations

import sqlite3

import pytest

from appliance.index import Index
from appliance.index.database import CACHE_KIB
from appliance.index.schema import MIGRATIONS
from appliance.model import Kind, Resource
from appliance.storage.policy import BUILTIN_POLICIES, make_policy


@pytest.fixture
def index(tmp_path):
    idx = Index(tmp_path / "index.sqlite")
    idx.seed(
        {"fast": make_policy("fast", [(1, 600)])},
        [("all", "*", "medium"), ("net", "network.*", "low"), ("netb", "network.in*", "fast")],
    )
    yield idx
    idx.close()


def test_schema_version_and_wal(index, tmp_path):
    assert index.schema_version == len(MIGRATIONS)
    assert index.query("PRAGMA journal_mode")[0][0] == "wal"
    # Each process's own page cache is bounded (issue 14): the kernel's is shared anyway.
    assert index.query("PRAGMA cache_size")[0][0] == -CACHE_KIB
    again = Index(tmp_path / "index.sqlite")  # reopening runs nothing twice
    assert again.schema_version == len(MIGRATIONS)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "index.sqlite"
    Index(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        Index(path)


def test_longest_matching_rule_wins(index):
    assert index.policy_for("cpu") == "medium"
    assert index.policy_for("network.outgoing.bytes") == "low"
    assert index.policy_for("network.incoming.bytes") == "fast"
    assert index.policy("fast").granularities == [1]
    assert set(BUILTIN_POLICIES) <= {p.name for p in index.policies()}


def test_metrics_are_created_once_and_cached(index):
    res = Resource.from_key("host", "h1")
    index.ensure_resources([res])
    first = index.ensure_metrics([(res.id, "cpu", "ns", Kind.CUMULATIVE)])
    second = index.ensure_metrics([(res.id, "cpu", "ns", Kind.CUMULATIVE)])
    assert first == second
    other = Index(index.path)  # another process sees the same metric
    assert other.ensure_metrics([(res.id, "cpu", "ns", Kind.CUMULATIVE)]) == first
    assert len(index.metrics()) == 1


def test_a_restarted_agent_finds_thousands_of_metrics_in_a_few_queries(index):
    # More resources than one lookup takes (500), two metrics each, plus one new metric on
    # a known resource and one on a new resource: found, not created twice.
    resources = [Resource.from_key("if", f"sw/{i}") for i in range(1203)]
    index.ensure_resources(resources)
    wanted = [(r.id, name, "B", Kind.CUMULATIVE) for r in resources for name in ("rx", "tx")]
    first = index.ensure_metrics(wanted)
    restarted = Index(index.path)  # a fresh process: an empty cache
    extra = Resource.from_key("if", "sw/new")
    restarted.ensure_resources([extra])
    more = [(resources[0].id, "errors", "1", Kind.CUMULATIVE), (extra.id, "rx", "B", Kind.GAUGE)]
    again = restarted.ensure_metrics(wanted + more)
    assert {k: again[k] for k in first} == first
    assert len(index.metrics(limit=10_000)) == len(wanted) + 2
    assert again[(extra.id, "rx")].kind is Kind.GAUGE


def test_resources_paginate_with_marker_in_sort_order(index):
    resources = [Resource.from_key("host", f"h{i}", {"rank": i % 3}) for i in range(10)]
    index.ensure_resources(resources)
    sort = [("rank", False), ("id", True)]
    seen, marker = [], None
    while True:
        page = index.resources("host", sort=sort, limit=3, marker=marker)
        seen += [r["id"] for r in page]
        if len(page) < 3:
            break
        marker = page[-1]["id"]
    everything = [r["id"] for r in index.resources("host", sort=sort)]
    assert seen == everything and len(seen) == 10


def test_ended_resource_closes_a_revision(index):
    res = Resource.from_key("instance", "vm", {"state": "running"})
    index.ensure_resources([res], now=100.0)
    gone = Resource(res.id, res.type, res.original_resource_id, {"state": "running"}, 200.0)
    index.ensure_resources([gone], now=200.0)
    history = index.history(res.id)
    assert [h["ended_at"] for h in history] == [None, 200.0]
    assert history[0]["revision_end"] == 200.0


def test_a_resource_deleted_by_another_process_is_created_again_by_the_poller(index):
    """An agent's caches must not outlive an API worker's delete (another connection)."""
    res = Resource.from_key("host", "h1", {"name": "a"})
    index.ensure_resources([res])
    (old,) = index.ensure_metrics([(res.id, "cpu", "ns", Kind.CUMULATIVE)]).values()
    api = Index(index.path)
    try:
        assert api.delete_resource(res.id) == [old.id]
    finally:
        api.close()
    assert index.ensure_resources([res]) == 1  # written again, not skipped as unchanged
    (new,) = index.ensure_metrics([(res.id, "cpu", "ns", Kind.CUMULATIVE)]).values()
    assert new.id != old.id
    assert [m.id for m in index.metrics(resource_id=res.id)] == [new.id]


def test_policy_and_rule_changes_reach_other_processes(index):
    api = Index(index.path)
    try:
        api.create_policy(make_policy("spare", [(10, 100)]))
        assert index.policy("spare").granularities == [10]
        assert index.policy_for("disk.read") == "medium"
        api.change_policy(make_policy("spare", [(5, 100)]))
        api.create_rule("disk", "disk.*", "spare")
    finally:
        api.close()
    assert index.policy("spare").granularities == [5]
    assert index.policy_for("disk.read") == "spare"
