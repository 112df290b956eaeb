"""The HTTP API under gunicorn (2 workers) vs. raw rrdtool, in the same run.

Against a real ``appliance run`` (pollsters off):

1. ingest: 1000 metrics x 1440 points (one day at one minute), sent as 24 rounds of 60
   points per metric through ``/v1/batch/metrics/measures`` by a 2-process client, timed
   until the last points are readable (GET after the last acknowledged write). The first
   round creates the RRD files and is reported apart.
2. GET one metric's day at 1-minute granularity: p50/p99 over sequential requests, with a
   new connection per request and through a session-like client (one kept-alive connection
   if the server keeps it, else a reconnect per request), measured in alternating blocks
   of 50 with the floor below; and the same request through the WSGI app in this process
   (Flask's test client: no HTTP, no gunicorn).
3. ``/v1/aggregates`` mean across 100 and 1000 metrics for that day.

Baselines: librrd ``rrdtool.update`` with 60 timestamps per call on 1000 files (the raw
batched rate) and ``rrdtool.fetch`` of the same day, both in this run; for the GET, the
floor of any Flask app here: bare Flask serving the same bytes from memory under the same
gunicorn arguments (``bare_flask.py``).

    .venv/bin/python benchmarks/api.py [--metrics 1000] [--rounds 24]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import psutil
import requests
import rrdtool

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance import config  # noqa: E402
from appliance.storage.policy import BUILTIN_POLICIES, rras  # noqa: E402
from appliance.store import Store  # noqa: E402
from appliance.web.api import create_app, server  # noqa: E402
from tests.conftest import RunningAppliance, free_port  # noqa: E402

HERE = Path(__file__).resolve().parent

POINTS = 60
PER_REQUEST = 100  # metrics per batch request (6,000 measures, ~250 KB)
CLIENTS = 2

BARE = "bare Flask, same bytes from memory, same gunicorn"

_BODIES: list[list[list[bytes]]] = []  # [client][round][request], filled before forking


def raw_baseline(tmp: Path, n: int, rounds: int, t0: int) -> dict[str, float]:
    """librrd directly: create n files with the medium layout, then update 60 points/call."""
    policy = BUILTIN_POLICIES["medium"]
    paths = [str(tmp / f"raw{i}.rrd") for i in range(n)]
    t = time.perf_counter()
    for p in paths:
        rrdtool.create(p, "--start", str(t0 - 60), "--step", "60",
                       "DS:v:GAUGE:600:U:U", *rras(policy))
    create_s = time.perf_counter() - t
    t = time.perf_counter()
    for r in range(rounds):
        stamps = [t0 + 60 * (r * POINTS + k) for k in range(POINTS)]
        for i, p in enumerate(paths):
            rrdtool.update(p, *[f"{ts}:{i + k}" for k, ts in enumerate(stamps)])
    update_s = time.perf_counter() - t
    fetch = []
    for _ in range(200):
        t = time.perf_counter()
        rrdtool.fetch(paths[0], "AVERAGE", "-r", "60", "-s", str(t0), "-e",
                      str(t0 + 86400))
        fetch.append(time.perf_counter() - t)
    t = time.perf_counter()
    for p in paths:
        rrdtool.fetch(p, "AVERAGE", "-r", "60", "-s", str(t0), "-e", str(t0 + 86400))
    fetch_all = time.perf_counter() - t
    return {
        "create_per_s": n / create_s,
        "update_values_per_s": n * POINTS * rounds / update_s,
        "fetch_p50_ms": statistics.median(fetch) * 1000,
        "fetch_all_ms": fetch_all * 1000,
    }


def bodies(ids: list[str], rounds: int, t0: int) -> list[list[list[bytes]]]:
    """Pre-encoded request bodies per client and round (encoding is not what we measure)."""
    out: list[list[list[bytes]]] = [[] for _ in range(CLIENTS)]
    for r in range(rounds):
        stamps = [t0 + 60 * (r * POINTS + k) for k in range(POINTS)]
        for c in range(CLIENTS):
            mine = ids[c::CLIENTS]
            out[c].append([
                orjson.dumps({mid: [{"timestamp": ts, "value": float(j + k)}
                                    for k, ts in enumerate(stamps)]
                              for j, mid in enumerate(mine[i:i + PER_REQUEST])})
                for i in range(0, len(mine), PER_REQUEST)
            ])
    return out


def _client(args: tuple[str, str, int, int, int]) -> int:
    url, token, client, first, last = args
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {token}",
                            "Content-Type": "application/json"})
    accepted = 0
    for rnd in _BODIES[client][first:last]:
        for body in rnd:
            r = session.post(f"{url}/v1/batch/metrics/measures", data=body, timeout=120)
            r.raise_for_status()
            accepted += r.json()["accepted"]
    return accepted


def ingest(pool, app, ids: list[str], first: int, last: int, t0: int) -> tuple[float, int]:
    """Send rounds [first, last) from all clients; time until the last points are readable."""
    t = time.perf_counter()
    accepted = sum(pool.map(_client, [(app.url, app.token, c, first, last)
                                      for c in range(CLIENTS)]))
    last_ts = t0 + 60 * (last * POINTS - 1)
    for mid in (ids[0], ids[-1]):
        got = requests.get(f"{app.url}/v1/metric/{mid}/measures", headers=app.headers,
                           params={"granularity": 60, "start": last_ts}, timeout=30).json()
        assert got and got[-1][2] is not None, got
    return time.perf_counter() - t, accepted


def http_get(app: RunningAppliance, path: str, params: dict,
             conn: http.client.HTTPConnection | None = None) -> http.client.HTTPResponse:
    """A lean client (http.client): ``requests`` alone costs about a millisecond per call.

    Without ``conn``, a new TCP connection per request (a one-shot client such as curl);
    with one, that connection is reused while the server keeps it open and reopened when it
    does not (what a ``requests.Session``, as gnocchiclient keeps, does).
    """
    own = conn is None
    if conn is None:
        conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)
    try:
        conn.request("GET", f"{path}?{urllib.parse.urlencode(params)}", headers=app.headers)
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, body
        return response
    finally:
        if own:
            conn.close()


def get_calls(app: RunningAppliance, path: str, params: dict) -> dict[str, Callable[[], object]]:
    """A GET with a new connection per request, and through a session-like client."""
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)
    kept_alive = not http_get(app, path, params, conn).will_close
    how = ("one kept-alive connection" if kept_alive
           else "session client (the server closes each connection: reconnects)")
    return {"new connection per request": lambda: http_get(app, path, params),
            how: lambda: http_get(app, path, params, conn)}


def interleaved(calls: dict[str, Callable[[], object]], repeat: int,
                block: int = 50) -> dict[str, list[float]]:
    """Sorted latencies of each call, measured in alternating blocks of ``block`` requests:
    this VM shows CPU steal from its host at times, and alternating lets a noisy minute
    weigh on every call alike instead of on whichever was measured then."""
    out: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeat // block):
        for name, call in calls.items():
            out[name] += timed(call, block)
    return {name: sorted(times) for name, times in out.items()}


def in_process_latencies(app: RunningAppliance, path: str, params: dict,
                         repeat: int) -> list[float]:
    """The same GET through the app's WSGI callable here (what HTTP and gunicorn add is the
    difference), over a store of its own on the running appliance's data dir."""
    settings = config.load(app.config_path, app.data_dir)
    store = Store(settings, seed=False)
    try:
        client = create_app(settings, store).test_client()

        def call() -> None:
            response = client.get(path, query_string=params, headers=app.headers)
            assert response.status_code == 200, response.data

        return sorted(timed(call, repeat))
    finally:
        store.close()


@contextlib.contextmanager
def bare_flask(body: bytes, supervised_argv: list[str], tmp: Path) -> Iterator[Callable[[], None]]:
    """A GET of the same bytes from memory by bare Flask under the appliance's gunicorn
    arguments (benchmarks/bare_flask.py): what any Flask app costs here, in this run."""
    (tmp / "bare-body.json").write_bytes(body)
    port = free_port()
    argv = [a if not a.startswith("127.0.0.1:") else f"127.0.0.1:{port}"
            for a in supervised_argv[:-1]] + ["--chdir", str(HERE), "bare_flask:app"]
    env = {**os.environ, "BARE_BODY": str(tmp / "bare-body.json")}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            assert time.monotonic() < deadline, "bare Flask did not start"
            time.sleep(0.1)

        def call() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                conn.request("GET", "/v1/metric/x/measures")
                response = conn.getresponse()
                assert response.status == 200 and response.read() == body
            finally:
                conn.close()

        timed(call, 100)  # workers warm, as the appliance's are by now
        yield call
    finally:
        proc.terminate()
        proc.wait(10)


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def pss_mb(app: RunningAppliance) -> float:
    total = 0
    for line in app.leftovers():
        with contextlib.suppress(psutil.Error):
            total += psutil.Process(int(line.split(":")[0])).memory_full_info().pss
    return total / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--metrics", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=24)
    args = parser.parse_args()
    n, rounds = args.metrics, args.rounds
    t0 = (int(time.time()) // 60 - rounds * POINTS) * 60
    with tempfile.TemporaryDirectory() as tmp:
        raw = raw_baseline(Path(tmp), n, rounds, t0)
        app = RunningAppliance(Path(tmp) / "appliance", {"pollsters": {
            "host": {"enabled": False}, "sensors": {"enabled": False},
            "libvirt": {"enabled": False}}})
        app.start()
        try:
            session = requests.Session()
            session.headers.update(app.headers)
            body = {"archive_policy_name": "medium", "name": "bench.load"}
            ids = [session.post(f"{app.url}/v1/metric", json=body).json()["id"]
                   for _ in range(n)]
            _BODIES[:] = bodies(ids, rounds, t0)
            with multiprocessing.get_context("fork").Pool(CLIENTS) as pool:
                first_s, first_n = ingest(pool, app, ids, 0, 1, t0)
                rest_s, rest_n = ingest(pool, app, ids, 1, rounds, t0)
            assert first_n == n * POINTS and rest_n == n * POINTS * (rounds - 1)

            day = {"granularity": 60, "start": t0, "stop": t0 + 86400}
            path = f"/v1/metric/{ids[0]}/measures"
            day_body = session.get(f"{app.url}{path}", params=day).content
            settings = config.load(app.config_path, app.data_dir)
            api_argv = [sys.executable, "-m", "gunicorn", *server.gunicorn_argv(settings)]
            with bare_flask(day_body, api_argv, Path(tmp)) as bare_call:
                get = interleaved({**get_calls(app, path, day), BARE: bare_call}, 1000)
            get["in-process WSGI, no HTTP"] = in_process_latencies(app, path, day, 1000)

            def mean_across(k: int):
                refs = " ".join(f"({mid} mean)" for mid in ids[:k])
                body = {"operations": f"(aggregate mean (metric {refs}))"}

                def call():
                    r = session.post(f"{app.url}/v1/aggregates", params=day, json=body)
                    r.raise_for_status()
                    assert len(r.json()["measures"]["aggregated"]) >= rounds * POINTS - 60

                return statistics.median(timed(call, 7)) * 1000

            agg100, agg1000 = mean_across(min(100, n)), mean_across(n)
            scrape = statistics.median(timed(lambda: http_get(app, "/metrics", {}), 5)) * 1000
            pss = pss_mb(app)
        finally:
            app.stop()

    first_rate = first_n / first_s
    rate = rest_n / rest_s
    print(f"metrics: {n}, points per metric: {rounds * POINTS} (1-minute steps)")
    print(f"raw rrdtool: create {raw['create_per_s']:,.0f} files/s, "
          f"update {raw['update_values_per_s']:,.0f} values/s (60 per call), "
          f"fetch day p50 {raw['fetch_p50_ms']:.3f} ms, {n} fetches {raw['fetch_all_ms']:.1f} ms")
    print(f"ingest, first round (creates {n} files): {first_rate:,.0f} measures/s readable")
    print(f"ingest, rounds 2..{rounds}: {rate:,.0f} measures/s readable "
          f"(ratio to raw rrdtool update: {rate / raw['update_values_per_s']:.2f}; "
          f"target >= 300,000)")
    bare = get.pop(BARE)
    bare_p50 = bare[len(bare) // 2] * 1000
    for how, times in get.items():
        p50, p99 = times[len(times) // 2] * 1000, times[int(len(times) * 0.99)] * 1000
        print(f"GET one day at 1 min, {how}: p50 {p50:.2f} ms, p99 {p99:.2f} ms "
              f"(ratio to raw fetch p50: {p50 / raw['fetch_p50_ms']:.1f}; to bare Flask p50: "
              f"{p50 / bare_p50:.2f}; target p50 < 1 ms)")
    print(f"the floor: bare Flask serving the same {len(day_body):,} bytes from memory under "
          f"the same gunicorn, new connection per request, measured in alternating blocks of "
          f"50 with the GETs above: p50 {bare_p50:.2f} ms, "
          f"p99 {bare[int(len(bare) * 0.99)] * 1000:.2f} ms")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f}")
    print(f"aggregates mean across 100 metrics: {agg100:.1f} ms")
    print(f"aggregates mean across {n} metrics: {agg1000:.1f} ms "
          f"(ratio to {n} raw fetches: {agg1000 / raw['fetch_all_ms']:.2f}; target < 150 ms)")
    print(f"/metrics with {n} metrics: {scrape:.1f} ms")
    print(f"PSS of all appliance processes after the run: {pss:.0f} MB")


if __name__ == "__main__":
    main()
