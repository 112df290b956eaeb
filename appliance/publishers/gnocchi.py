"""Publish samples to a Gnocchi v1 API (or another appliance), as Ceilometer's publisher does.

One ``POST /v1/batch/resources/metrics/measures?create_metrics=true`` per batch; metrics are
created on the fly by the receiver. When it answers that resources are unknown, they are
created (``POST /v1/resource/<type>`` with the attributes the receiver's type declares, or as
``generic`` if it does not know the type) and the batch is sent again.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

from appliance.model import PollResult, Resource, Sample
from appliance.publishers.base import PermanentError, Publisher
from appliance.scaleout_config import GnocchiPublisher


class Gnocchi(Publisher):
    kind = "gnocchi"

    def __init__(self, settings: GnocchiPublisher, run_dir: Path, source: str):
        self.http = requests.Session()
        if settings.token is not None:
            # gnocchi-basic: the user name is the credential, the password is empty.
            self.http.auth = (settings.token.get_secret_value(), "")
        self.base = settings.url.rstrip("/")
        self._types: dict[str, set[str] | None] = {}
        super().__init__(settings, run_dir, source)

    def convert(self, result: PollResult) -> list[Sample]:
        return list(result.samples)

    def send(self, batch: Sequence[Sample]) -> None:
        body: dict[str, dict[str, Any]] = {}
        resources: dict[str, Resource] = {}
        for s in batch:
            resources[s.resource.id] = s.resource
            metric = body.setdefault(s.resource.id, {}).setdefault(s.metric_name, {
                "unit": s.unit or None, "measures": []})
            if self.settings.archive_policy:
                metric["archive_policy_name"] = self.settings.archive_policy
            metric["measures"].append({"timestamp": s.timestamp, "value": s.value})
        url = f"{self.base}/v1/batch/resources/metrics/measures"
        r = self._post(url, body, params={"create_metrics": "true"})
        if r.status_code == 400 and "Unknown resources" in r.text:
            for resource in resources.values():
                self._create(resource)
            r = self._post(url, body, params={"create_metrics": "true"})
        self._check(r)

    def _post(self, url: str, body: Any, **kw: Any) -> requests.Response:
        return self.http.post(url, json=body, timeout=self.settings.timeout, **kw)

    def _declared(self, type_: str) -> set[str] | None:
        """The attributes the receiver's resource type declares (None: no such type)."""
        if type_ not in self._types:
            r = self.http.get(f"{self.base}/v1/resource_type/{type_}",
                              timeout=self.settings.timeout)
            if r.status_code == 404:
                self._types[type_] = None
            else:
                self._check(r)
                self._types[type_] = set(r.json().get("attributes") or ())
        return self._types[type_]

    def _create(self, resource: Resource) -> None:
        """Create one resource with the attributes its type declares; 409 (exists) is fine."""
        declared = self._declared(resource.type)
        type_ = resource.type if declared is not None else "generic"
        body = {k: v for k, v in resource.attributes.items() if k in (declared or ())
                and (v is None or isinstance(v, str | int | float | bool))}
        r = self._post(f"{self.base}/v1/resource/{type_}", {"id": resource.id, **body})
        if r.status_code != 409:
            self._check(r)

    @staticmethod
    def _check(r: requests.Response) -> None:
        if r.status_code // 100 == 2:
            return
        problem = f"HTTP {r.status_code}: {r.text[:200]}"
        if 400 <= r.status_code < 500 and r.status_code not in (401, 403, 429):
            raise PermanentError(problem)
        raise RuntimeError(problem)
