"""What replacing an idle API worker costs the next client (``api.worker_idle_recycle_s``).

A worker that grew while serving and then idled is replaced by a fresh fork
(appliance/web/api/serving.py); the next request is served by a worker that has yet to
copy the pages it touches and to open the store. This measures that first request against
the same request on a warm worker, in the same run, on a real ``appliance run`` with one
API worker (so every request meets the same worker) and a 2 s idle bound: each round idles
until the worker is replaced, then times one request on the fresh worker and three more.

    .venv/bin/python benchmarks/idle_recycle.py [--rounds 10] [--path /metrics]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import RunningAppliance, wait_for  # noqa: E402

WARM = 3  # requests timed on the warm worker after each first one


def worker_pid(app: RunningAppliance) -> int | None:
    """The API's only worker (the gunicorn arbiter's child); None while it is replaced."""
    arbiter = next(p for p in psutil.Process(app.proc.pid).children(recursive=True)
                   if "gunicorn: master" in " ".join(p.cmdline()))
    children = arbiter.children()
    return children[0].pid if len(children) == 1 else None


def timed_get(session: requests.Session, url: str) -> float:
    """One GET, in ms."""
    started = time.perf_counter()
    session.get(url, timeout=30).raise_for_status()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--path", default="/metrics")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        app = RunningAppliance(Path(name) / "appliance",
                               {"api": {"workers": 1, "worker_idle_recycle_s": 2}})
        app.start()
        try:
            session = requests.Session()
            session.headers.update(app.headers)
            url = f"{app.url}{args.path}"
            first, warm = [], []
            for _ in range(args.rounds):
                served = wait_for(lambda: worker_pid(app), timeout=60, what="a worker")
                wait_for(lambda served=served: worker_pid(app) not in (served, None),
                         timeout=60, what="the idle worker replaced")
                first.append(timed_get(session, url))
                warm.extend(timed_get(session, url) for _ in range(WARM))
        finally:
            app.stop()
    f, w = statistics.median(first), statistics.median(warm)
    print(f"GET {args.path}, {args.rounds} rounds: first request on a fresh worker "
          f"median {f:.1f} ms (max {max(first):.1f}); warm worker median {w:.1f} ms; "
          f"ratio {f / w:.1f}x, {f - w:+.1f} ms once per idle spell")


if __name__ == "__main__":
    main()
