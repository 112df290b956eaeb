"""The line-protocol parser on its own: escapes, types, precision."""

from __future__ import annotations

import pytest

from appliance.lineprotocol import LineError, parse


def test_escapes_quotes_and_types():
    line = r'my\ meas,tag\,k=a\=b\ c f\ 1=1.5,i=-3i,u=4u,b=FALSE,s="a \"q\", b=c" '
    [p] = parse(line + "1500000000000000000")
    assert p.measurement == "my meas"
    assert p.tags == {"tag,k": "a=b c"}
    assert p.fields == {"f 1": 1.5, "i": -3.0, "u": 4.0, "b": 0.0}
    assert p.skipped == 1
    assert p.timestamp == pytest.approx(1.5e9)


def test_precision_and_default_timestamp():
    assert parse("m v=1 1500000000", "s")[0].timestamp == 1.5e9
    assert parse("m v=1 1500000000000", "ms")[0].timestamp == pytest.approx(1.5e9)
    assert parse("m v=1", now=42.0)[0].timestamp == 42.0


@pytest.mark.parametrize("line", ["m", "m v=", "m =1", ",t=1 v=1", "m,t v=1", "m v=1i2",
                                  "m v=inf", "m v=1 2 3"])
def test_invalid_lines(line):
    with pytest.raises(LineError, match="line 1"):
        parse(line)
