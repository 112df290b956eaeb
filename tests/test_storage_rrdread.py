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
