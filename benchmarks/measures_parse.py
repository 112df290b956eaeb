"""Checking a batch write's measures: the hand loop the API uses vs. pydantic, same run.

Why measures are the one request body not validated by a pydantic model: the body of a batch
write (100 metrics x 60 measures, the shape ``benchmarks/api.py`` sends) is parsed with
orjson and checked by ``ingest.parse_measures``; the alternatives are pydantic over the
parsed body (a ``{timestamp, value}`` model per measure) and pydantic parsing the JSON
itself. Prints measures/s for each and the ratio to the hand loop.

    .venv/bin/python benchmarks/measures_parse.py [--repeat 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from pydantic import BaseModel, TypeAdapter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance.web.api import ingest  # noqa: E402

METRICS, POINTS = 100, 60


class Measure(BaseModel):
    timestamp: str | float
    value: float


BATCH = TypeAdapter(dict[str, list[Measure]])


def body() -> bytes:
    t0 = 1_700_000_000
    return orjson.dumps({f"{i:032x}": [{"timestamp": t0 + 60 * p, "value": float(p)}
                                       for p in range(POINTS)] for i in range(METRICS)})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    raw = body()

    def hand() -> object:
        parsed, stamps = orjson.loads(raw), ingest.TimestampParser()
        return [ingest.parse_measures(k, v, stamps) for k, v in parsed.items()]

    ways: dict[str, Callable[[], object]] = {
        "orjson + hand loop (the API)": hand,
        "orjson + pydantic model per measure": lambda: BATCH.validate_python(orjson.loads(raw)),
        "pydantic parsing the JSON": lambda: BATCH.validate_json(raw),
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.repeat):  # alternating, so a noisy minute hits every way alike
        for name, way in ways.items():
            start = time.perf_counter()
            way()
            times[name].append(time.perf_counter() - start)
    n = METRICS * POINTS
    base = statistics.median(times["orjson + hand loop (the API)"])
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name}: {n / median:,.0f} measures/s ({median * 1000:.2f} ms per {n} measures; "
              f"time ratio to the hand loop {median / base:.2f})")


if __name__ == "__main__":
    main()
