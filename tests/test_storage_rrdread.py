"""The API's direct RRD reader returns exactly what ``rrdtool.fetch`` returns."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rrdtool

from appliance.storage import rrdread
from appliance.storage.policy import BUILTIN_POLICIES, rras

T0 = 1_700_000_000 // 3600 * 3600


@pytest.fixture(scope="module")
def rrd(tmp_path_factory) -> str:
    """A 'high' policy file (1 s, 1 min, 1 h) with gaps, wrapped rings and three CFs."""
    path = str(tmp_path_factory.mktemp("rrd") / "m.rrd")
    policy = BUILTIN_POLICIES["high"]
    rrdtool.create(path, "--start", str(T0 - 1), "--step", "1", "DS:v:GAUGE:600:U:U",
                   *rras(policy))
    stamps = [t for t in range(T0, T0 + 5 * 3600, 7) if not 4000 < t - T0 < 4600]
    for i in range(0, len(stamps), 500):
        rrdtool.update(path, *[f"{t}:{math.sin(t / 300) * 50}" for t in stamps[i:i + 500]])
    return path


def _fetch(path, cf, granularity, start, stop):
    (f_start, _, step), _, rows = rrdtool.fetch(path, cf, "-r", str(granularity),
                                                "-s", str(start), "-e", str(stop))
    assert step == granularity
    return {f_start + i * step: (math.nan if r[0] is None else r[0])
            for i, r in enumerate(rows)}


@pytest.mark.parametrize("cf", ["AVERAGE", "MIN", "MAX"])
@pytest.mark.parametrize(
    ("granularity", "start", "stop"),
    [(1, T0 + 5 * 3600 - 600, T0 + 5 * 3600), (60, T0, T0 + 5 * 3600),
     (60, T0 + 3000, T0 + 5000), (3600, T0, T0 + 5 * 3600)],
)
def test_same_values_as_rrdtool_fetch(rrd, cf, granularity, start, stop):
    times, values = rrdread.read(rrd, cf, granularity, start, stop)
    expected = _fetch(rrd, cf, granularity, start, stop)
    assert len(times) > 0
    assert np.all(np.diff(times) == granularity)
    for t, v in zip(times.tolist(), values.tolist(), strict=True):
        assert t in expected
        assert (math.isnan(v) and math.isnan(expected[t])) or v == expected[t]
    # Every known point rrdtool returns inside the window is there too.
    known = {t for t, v in expected.items() if not math.isnan(v) and start <= t < stop}
    assert known <= set(times.tolist())


def test_unknown_archive_and_foreign_files_are_refused(rrd, tmp_path):
    with pytest.raises(rrdread.UnsupportedFile):
        rrdread.read(rrd, "LAST", 60, None, None)
    junk = tmp_path / "junk.rrd"
    junk.write_bytes(b"not an rrd file at all" * 10)
    with pytest.raises(rrdread.UnsupportedFile):
        rrdread.read(str(junk), "AVERAGE", 60, None, None)


@pytest.mark.parametrize(("granularity", "first", "count"), [
    (60, T0 - 600, 400),  # starts before the file's first bucket
    (60, T0 + 3000, 40),  # inside, across the gap
    (60, T0 + 5 * 3600 - 1200, 100),  # ends after the newest completed bucket
    (1, T0 + 5 * 3600 - 600, 700),
])
def test_block_rows_are_what_read_returns(rrd, tmp_path, granularity, first, count):
    junk = tmp_path / "junk.rrd"
    junk.write_bytes(b"not an rrd file at all" * 10)
    fallback_rows = []

    def fallback(r):  # what a layout rrdread refuses is placed by its own times
        fallback_rows.append(r)
        return np.array([first + granularity, first - granularity]), np.array([7.0, 8.0])

    paths = [rrd, str(tmp_path / "missing.rrd"), str(junk), rrd]
    block = rrdread.read_block(paths, "MAX", granularity, first, count, fallback)
    assert block.shape == (4, count)
    times, values = rrdread.read(rrd, "MAX", granularity, first, first + count * granularity)
    expected = np.full(count, np.nan)
    expected[((times - first) // granularity).astype(int)] = values
    assert np.any(~np.isnan(expected))
    np.testing.assert_array_equal(block[0], expected)
    np.testing.assert_array_equal(block[3], expected)
    assert np.all(np.isnan(block[1]))  # no file: no values
    assert fallback_rows == [2]
    assert block[2, 1] == 7.0 and np.isnan(block[2, 0]) and np.all(np.isnan(block[2, 2:]))


@pytest.mark.parametrize(("granularity", "rows"), [(60, 7 * 1440), (3600, 365 * 24)])
def test_librrd_fallback_gives_the_same_known_points(rrd, granularity, rows):
    # The fallback for layouts the direct reader refuses must agree with it where both work.
    start, stop = T0 + 1800, T0 + 5 * 3600 - 900
    times, values = rrdread.read(rrd, "AVERAGE", granularity, start, stop)
    known = [(int(t), v) for t, v in zip(times.tolist(), values.tolist(), strict=True)
             if not math.isnan(v)]
    assert known
    assert rrdread.fetch_with_librrd(rrd, "AVERAGE", granularity, rows, start, stop) == known
