"""Publishers: sinks besides the local store, each with its own queue and retry policy.

A publisher is called by the agent like the store (``publisher(result)``), but only converts
the samples and appends them to its bounded in-memory queue; a thread of its own sends
batches and retries with exponential backoff. So a down or slow receiver never delays
polling or the local store. When the queue is full the oldest samples are dropped and
counted. The queue is in memory: a restart of the agent loses what it held (the local store
keeps everything, so the loss is only what the remote side would have had).

Backlog, drops and the last success are written to ``run/state/publishers/`` every few
seconds for ``/v1/status``, ``/metrics`` and the status page.
"""

from __future__ import annotations

from appliance.config import Settings
from appliance.publishers.base import Publisher
from appliance.scaleout_config import RemoteWritePublisher


def build(settings: Settings, source: str, store) -> list[Publisher]:
    """The configured publishers for one agent (imported lazily: none configured, none loaded)."""
    out: list[Publisher] = []
    for cfg in settings.publishers:
        if isinstance(cfg, RemoteWritePublisher):
            from appliance.publishers.remote_write import RemoteWrite

            out.append(RemoteWrite(cfg, settings.run_dir, source, store.index))
        else:
            from appliance.publishers.gnocchi import Gnocchi

            out.append(Gnocchi(cfg, settings.run_dir, source))
    return out
