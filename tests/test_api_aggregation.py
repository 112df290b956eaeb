"""The pure parts behind the API: the aggregates engine and the search query compiler."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from appliance.aggregation import OperationError, Series, UnAggregable, evaluate, parse
from appliance.index.query import QueryError, compile_query, parse_filter


def series(ref: str, values: list[float | None], start: int = 0, g: float = 60.0) -> Series:
    times = np.array([start + g * i for i in range(len(values))])
    vals = np.array([np.nan if v is None else v for v in values])
    return Series((ref, "mean"), g, times, vals)


def run(ops, inputs, **kw):
    (block,) = evaluate(parse(ops), inputs, **kw)
    return block


def test_aggregate_across_series():
    inputs = [series("a", [1, 2, 3]), series("b", [3, 4, 5])]
    block = run("(aggregate mean (metric (a mean) (b mean)))", inputs)
    assert block.aggregated and block.values[:, 0].tolist() == [2, 3, 4]
    block = run(["aggregate", "count", ["metric", ["a", "mean"], ["b", "mean"]]], inputs)
    assert block.values[:, 0].tolist() == [2, 2, 2]


def test_overlap_and_fill():
    inputs = [series("a", [1, 2, 3, 4]), series("b", [None, 10, 20, None])]
    ops = "(aggregate sum (metric (a mean) (b mean)))"
    block = run(ops, inputs)  # trimmed to where both have points
    assert block.times.tolist() == [60, 120] and block.values[:, 0].tolist() == [12, 23]
    with pytest.raises(UnAggregable):
        run(ops, inputs, start=0, stop=240)  # 50% overlap < 100%
    block = run(ops, inputs, start=0, stop=240, needed_overlap=50)
    assert block.values[:, 0].tolist() == [1, 12, 23, 4]
    block = run(ops, inputs, fill=0.0)
    assert block.values[:, 0].tolist() == [1, 12, 23, 4]


def test_resample_rolling_and_arithmetic():
    a = series("a", [1, 2, 3, 4, 5, 6])
    block = run("(resample max 180 (metric a mean))", [a])
    assert block.granularity == 180 and block.values[:, 0].tolist() == [3, 6]
    block = run("(rolling mean 3 (metric a mean))", [a])
    assert block.times.tolist() == [120, 180, 240, 300]
    assert block.values[:, 0].tolist() == [2, 3, 4, 5]
    block = run("(/ (* (metric a mean) 10) 2)", [a])
    assert block.values[:, 0].tolist() == [5, 10, 15, 20, 25, 30]
    block = run("(- (metric a mean) (metric a mean))", [a])
    assert block.values[:, 0].tolist() == [0] * 6
    assert not block.aggregated


def test_unaligned_series_are_merged_on_timestamps():
    a = series("a", [1, 2, 3], start=0)
    b = series("b", [10, 20, 30], start=60)
    block = run("(aggregate mean (metric (a mean) (b mean)))", [a, b])
    assert block.times.tolist() == [60, 120] and block.values[:, 0].tolist() == [6, 11.5]


@pytest.mark.parametrize(
    "ops",
    ["", "(metric a)", "(aggregate p99 (metric a mean))", "(rolling mean 0 (metric a mean))",
     "(resample mean -5 (metric a mean))", "(sqrt (metric a mean))", "(+ 1 2)",
     "((metric a mean)", "(metric a mean))", "(* (metric a mean) nan)", ["metric"], 42],
)
def test_invalid_operations_are_refused(ops):
    with pytest.raises(OperationError):
        parse(ops)


@pytest.fixture
def db():
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE resources (id, type, original_resource_id, started_at, ended_at,"
                 " revision_start, creator, project_id, user_id, attributes)")
    rows = [("1", "host", "h1", 100.0, None, 100.0, "a", None, None, '{"host_name": "alpha"}'),
            ("2", "host", "h2", 200.0, 300.0, 200.0, "a", None, None, '{"host_name": "beta"}'),
            ("3", "host", "h3", 300.0, None, 300.0, "b", None, None, '{"vcpus": 4}')]
    conn.executemany("INSERT INTO resources VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    return conn


def ids(db, query: dict) -> list[str]:
    where, params = compile_query(query)
    return [r[0] for r in db.execute(f"SELECT id FROM resources WHERE {where} ORDER BY id",
                                     params)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("host_name = 'alpha'", ["1"]),
        ("host_name != 'alpha'", ["2", "3"]),
        ("ended_at = null", ["1", "3"]),
        ("not ended_at = null", ["2"]),
        ("started_at >= '1970-01-01T00:03:20+00:00'", ["2", "3"]),
        ("host_name like 'b%' or vcpus > 2", ["2", "3"]),
        ("creator = 'a' and (host_name = 'beta' or host_name = 'alpha')", ["1", "2"]),
        ("id in ('1', '3')", ["1", "3"]),
        ("id in ['2']", ["2"]),
        ("vcpus ≥ 4 ∨ host_name == \"alpha\"", ["1", "3"]),
        ("", ["1", "2", "3"]),
    ],
)
def test_filter_strings(db, text, expected):
    assert ids(db, parse_filter(text)) == expected


def test_json_queries(db):
    assert ids(db, {"and": [{"=": {"creator": "a"}}, {"not": {"=": {"id": "1"}}}]}) == ["2"]
    assert ids(db, {"in": {"original_resource_id": ["h1", "h3"]}}) == ["1", "3"]


@pytest.mark.parametrize(
    "query",
    [{"=": {"bad name'": 1}}, {"<": {"ended_at": None}}, {"=": {"a": {"b": 1}}},
     {"and": []}, {"nope": {"a": 1}}, {"=": {"a": 1}, "!=": {"b": 2}},
     {"=": {"started_at": "yesterday"}}, {"in": {"id": []}}],
)
def test_invalid_queries_are_refused(query):
    with pytest.raises(QueryError):
        compile_query(query)


@pytest.mark.parametrize("text", ["host_name =", "= 'a'", "(a = 1", "a = 1 b = 2", "a in 1",
                                  "a = 'unterminated"])
def test_invalid_filter_strings_are_refused(text):
    with pytest.raises(QueryError):
        compile_query(parse_filter(text))
