"""The same samples in the appliance and in a real Prometheus 2.42, for comparisons.

The appliance gets them through its store (rrdcached, RRD files); Prometheus gets them as
OpenMetrics backfilled with ``promtool tsdb create-blocks-from openmetrics``, labelled with
the exact label sets the appliance's ``/api/v1/series`` reports, then loads the blocks.
Used by tests/test_promql_vs_prometheus.py and benchmarks/promql.py.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import threading
from pathlib import Path

import requests
from werkzeug.serving import make_server

from appliance.model import Kind, PollResult, Resource, Sample
from appliance.promnames import series_name
from appliance.store import Store
from tests.conftest import free_port, wait_for

STEP = 60


def fleet_samples(disks: int, points: int, end: float, seed: int = 7, offset: int = 0,
                  walk: bool = False) -> PollResult:
    """``disks`` host disks on 4 hosts, each with gauges ``disk.usage`` and ``disk.free`` and
    counter ``disk.device.read.bytes``, one sample a minute up to ``end``, ``offset``
    seconds after each minute (0: on bucket boundaries, every bucket holds one sample).
    Gauges are uniformly random, or with ``walk`` a random walk moving at most 1 a step."""
    rng = random.Random(seed)
    last = int(end) // STEP * STEP
    first = last - (points - 1) * STEP
    samples = []
    for d in range(disks):
        res = Resource.from_key("host_disk", f"bench://disk/{d}",
                                {"device_name": f"sd{d:03d}", "host_name": f"host{d % 4}"})
        counter = rng.randrange(10**6, 10**9)
        usage, free = rng.uniform(20, 80), rng.uniform(100, 400)
        for k in range(points):
            t = float(first + k * STEP + offset)
            counter += rng.randrange(0, 5 * 10**6)
            if walk:
                usage, free = usage + rng.uniform(-1, 1), free + rng.uniform(-1, 1)
            else:
                usage, free = rng.uniform(0, 100), rng.uniform(1, 500)
            samples.append(Sample(res, "disk.usage", "%", Kind.GAUGE, round(usage, 3), t))
            samples.append(Sample(res, "disk.free", "GB", Kind.GAUGE, round(free, 3), t))
            samples.append(Sample(res, "disk.device.read.bytes", "B", Kind.CUMULATIVE,
                                  counter, t))
    return PollResult(samples)


def openmetrics(result: PollResult, appliance_series: list[dict[str, str]]) -> str:
    """The samples as OpenMetrics text, each series labelled exactly as the appliance's
    ``/api/v1/series`` reports it (``appliance_series``)."""
    labels_of = {(s["resource_id"], s["__name__"]): s for s in appliance_series}
    series: dict[tuple[str, str], list[Sample]] = {}
    for s in result.samples:
        name = series_name(s.metric_name, s.kind is Kind.CUMULATIVE)
        series.setdefault((s.resource.id, name), []).append(s)
    lines = []
    for key, samples in series.items():
        labels = dict(labels_of[key])
        name = labels.pop("__name__")
        body = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        lines += [f"{name}{{{body}}} {s.value!r} {int(s.timestamp)}" for s in samples]
    return "\n".join(lines) + "\n# EOF\n"


class Prometheus:
    """Debian's prometheus serving backfilled blocks from a directory of its own."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self, text: str) -> None:
        data = self.workdir / "tsdb"
        source = self.workdir / "samples.om"
        source.write_text(text)
        subprocess.run([shutil.which("promtool") or "promtool", "tsdb",
                        "create-blocks-from", "openmetrics", str(source), str(data)],
                       check=True, capture_output=True, timeout=300)
        config = self.workdir / "prometheus.yml"
        config.write_text("global: {}\nscrape_configs: []\n")
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        log = open(self.workdir / "prometheus.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={data}",
             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=30d"],
            stdout=log, stderr=log)
        wait_for(self._ready, timeout=60, what="prometheus ready")

    def _ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/-/ready", timeout=2).ok
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


class ServedApp:
    """A Flask app on a real HTTP port (werkzeug's threaded server) for real clients."""

    def __init__(self, app):
        self.port = free_port()
        self.server = make_server("127.0.0.1", self.port, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(10)


def load(store: Store, result: PollResult) -> None:
    """Write the samples into the appliance (reads flush rrdcached: readable at once)."""
    outcome = store.write(result)
    assert not outcome.rejected, outcome.rejected[:3]
