"""topk/bottomk's ranking against a stable sort, and the group reductions' fast paths."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from appliance.promql import Vector, parse
from appliance.promql.aggregate import _ranked, aggregate


def _by_sort(key: np.ndarray, k: np.ndarray) -> np.ndarray:
    order = np.argsort(key, axis=0, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(len(key))[:, None], axis=0)
    return rank < k[None, :]


@pytest.mark.parametrize("seed", range(40))
def test_small_k_ranks_as_a_stable_sort_ties_and_infinities_included(seed):
    rng = np.random.default_rng(seed)
    n, t = int(rng.integers(1, 14)), int(rng.integers(1, 9))
    pool = [-np.inf, np.inf, 0.0, -0.0, 1.0, -1.0, 2.5, 1e300, -1e-300]
    key = rng.choice(pool, size=(n, t)) if seed % 2 else rng.normal(size=(n, t)).round(1)
    k = rng.integers(-2, 12, size=t)  # per time; past 8 the sort itself is used
    np.testing.assert_array_equal(_ranked(key, k), _by_sort(key, k))


@pytest.mark.parametrize("query", ["sum(x)", "avg(x)", "count(x)", "min(x)", "max(x)",
                                   "sum by (g) (x)", "avg without (i) (x)"])
def test_groups_with_and_without_unknown_samples(query):
    rng = np.random.default_rng(3)
    values = rng.normal(10, 5, (6, 30))
    labels = [{"__name__": "x", "g": "ab"[i % 2], "i": str(i)} for i in range(6)]
    node = parse(query)
    full = aggregate(node, Vector(labels, values), None)
    gappy_values = values.copy()
    gappy_values[1, 5:] = np.nan
    gappy_values[:, 0] = np.nan
    gappy = aggregate(node, Vector(labels, gappy_values), None)
    for got, vals in ((full, values), (gappy, gappy_values)):
        for lab, row in zip(got.labels, got.values, strict=True):
            members = [i for i, m in enumerate(labels)
                       if all(m.get(k) == v for k, v in lab.items())]
            block = vals[members]
            with warnings.catch_warnings():  # an all-unknown column is meant
                warnings.simplefilter("ignore", RuntimeWarning)
                want = {"sum": np.nansum, "avg": np.nanmean, "min": np.nanmin,
                        "max": np.nanmax, "count": lambda b, axis: (~np.isnan(b)).sum(axis)
                        }[node.op](block, axis=0)
            want = np.where(np.isnan(block).all(axis=0), np.nan, want)
            np.testing.assert_allclose(row, want, rtol=1e-12)
