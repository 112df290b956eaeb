"""The window kernels of appliance.promql against a brute-force reading of the same windows."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.promql import windows

BRUTE = {
    "sum": np.sum, "count": len, "avg": np.mean, "min": np.min, "max": np.max,
    "last": lambda v: v[-1],
}


#: Evaluation times: scattered (columns gathered), or a regular grid at a multiple of the
#: granularity partly outside the block (columns taken as a strided view).
GRIDS = {
    "scattered": lambda rng, first, g: first + g * rng.integers(-20, 420, 50)
    + rng.choice([0.0, 17.0], 50),
    "every bucket": lambda rng, first, g: first + g * np.arange(-5, 45),
    "every third": lambda rng, first, g: first + 17.0 + 3 * g * np.arange(50),
}


@pytest.mark.parametrize("how", sorted(BRUTE))
@pytest.mark.parametrize("width", [0, 1, 5, 60, 1000])
@pytest.mark.parametrize("unknown", [0.3, 0.0])  # 0.0: every bucket known (the fast path)
@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_reduce_equals_brute_force(how, width, unknown, grid):
    rng = np.random.default_rng(width)
    values = rng.normal(50, 20, (7, 400))
    if unknown:
        values[rng.random(values.shape) < unknown] = np.nan  # unknown buckets
        values[3] = np.nan  # a series with no data at all
    first, g = 1000.0, 60.0
    times = GRIDS[grid](rng, first, g)
    before = values.copy()
    a, b = windows.bounds(first, g, values.shape[1], times - width * g, times)
    got = windows.reduce(values, a, b, how)
    assert got.shape == (7, 50)
    for row in range(7):
        for col, t in enumerate(times):
            labels = first + g * np.arange(values.shape[1])
            inside = (labels >= t - width * g) & (labels <= t)
            known = values[row][inside & ~np.isnan(values[row])]
            if len(known) == 0:
                assert np.isnan(got[row, col]), (row, t)
            else:
                assert got[row, col] == pytest.approx(BRUTE[how](known), rel=1e-9)
    np.testing.assert_array_equal(values, before)  # a result may be a view: never written
