"""Publish samples to a Prometheus remote-write 1.0 receiver (VictoriaMetrics, Prometheus...).

Series names and labels are those of ``/metrics`` (:mod:`appliance.promnames`): a dashboard
built on one reads the other. The metric id label comes from the local index's cache (the
store has just written the same samples, so this costs no SQL on a steady poll).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import requests

from appliance.index import Index
from appliance.model import Kind, PollResult
from appliance.promnames import series_labels, series_name
from appliance.publishers.base import PermanentError, Publisher
from appliance.remotewrite import HEADERS, Encoder, Labels
from appliance.scaleout_config import RemoteWritePublisher

#: (sorted label pairs, __name__ included; epoch seconds; value)
Item = tuple[Labels, float, float]


class RemoteWrite(Publisher):
    kind = "prometheus_remote_write"

    def __init__(self, settings: RemoteWritePublisher, run_dir: Path, source: str,
                 index: Index):
        self.index = index
        self.encoder = Encoder()
        # (resource id, meter) -> (its attributes, its labels): labels are built once a series
        self._series: dict[tuple[str, str], tuple[dict, Labels]] = {}
        self.http = requests.Session()
        self.http.headers.update(HEADERS)
        if settings.bearer_token is not None:
            self.http.headers["Authorization"] = (
                f"Bearer {settings.bearer_token.get_secret_value()}")
        super().__init__(settings, run_dir, source)

    def convert(self, result: PollResult) -> list[Item]:
        metrics = self.index.ensure_metrics(
            {(s.resource.id, s.metric_name): (s.resource.id, s.metric_name, s.unit, s.kind)
             for s in result.samples}.values()
        )
        out = []
        known = self._series
        for s in result.samples:
            r = s.resource
            key = (r.id, s.metric_name)
            cached = known.get(key)
            if cached is None or cached[0] != r.attributes:  # new, or attributes changed
                labels = series_labels(r.id, r.type, metrics[key].id, r.attributes)
                labels["__name__"] = series_name(s.metric_name, s.kind == Kind.CUMULATIVE)
                cached = known[key] = (dict(r.attributes), tuple(sorted(labels.items())))
            out.append((cached[1], s.timestamp, s.value))
        return out

    def send(self, batch: Sequence[Item]) -> None:
        series: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
        for labels, when, value in batch:
            series[labels].append((when, value))
        body = self.encoder.encode((labels, sorted(points)) for labels, points in series.items())
        r = self.http.post(self.settings.url, data=body, timeout=self.settings.timeout)
        if r.status_code // 100 == 2:
            return
        problem = f"HTTP {r.status_code}: {r.text[:200]}"
        if 400 <= r.status_code < 500 and r.status_code != 429:
            raise PermanentError(problem)
        raise RuntimeError(problem)
