"""The evaluator over buckets given directly through the Source protocol (no store)."""

from __future__ import annotations

import numpy as np

from appliance.promql import Block, SeriesInfo, evaluate, parse


class ArraySource:
    """Two gauges and a counter in 300 s buckets labelled 0, 300, ..., 2700."""

    def __init__(self):
        self.series = [
            SeriesInfo({"__name__": "temp", "chip": "a"}, False),
            SeriesInfo({"__name__": "temp", "chip": "b"}, False),
            SeriesInfo({"__name__": "bytes_total", "nic": "x"}, True),
        ]
        self.values = np.array([np.arange(10.0), np.arange(10.0) * 2, np.full(10, 5.0)])
        self.values[0, 9] = np.nan  # the newest bucket of chip a is not complete yet

    def select(self, matchers):
        return [s for s in self.series
                if all(m.matches(s.labels.get(m.label, "")) for m in matchers)]

    def read(self, series, method, start, stop, step):
        rows = [self.series.index(s) for s in series]
        return [Block(300.0, 0.0, self.values[rows], list(range(len(rows))))], []


def test_a_coarse_bucket_stays_visible_until_the_next_one_completes():
    value, _ = evaluate(parse('temp{chip="a"}'), ArraySource(), np.array([2700.0 + 250]), 60)
    assert value.values.tolist() == [[8.0]]  # bucket 2400, two buckets back


def test_a_range_shorter_than_a_bucket_reads_one_and_says_so():
    value, warnings = evaluate(parse("rate(bytes_total[1m])"), ArraySource(),
                               np.array([1500.0, 1800.0]), 300)
    assert value.values.tolist() == [[5.0, 5.0]] and value.labels == [{"nic": "x"}]
    assert warnings == ["range [60s] is shorter than the 300 s buckets it reads; "
                        "one bucket is used"]


def test_increase_is_the_mean_rate_times_the_range():
    value, _ = evaluate(parse("increase(bytes_total[30m])"), ArraySource(),
                        np.array([2700.0]), 300)
    assert value.values.tolist() == [[5.0 * 1800]]
