"""The config file's sections for more than one appliance: coordination, publishers and
receivers (their docs: README, "More than one appliance")."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr

from appliance.configbase import _Section


class CoordinationSettings(_Section):
    """tooz partitioning of SNMP targets, libvirt URIs and alarms across appliances."""

    # A tooz URL (redis://, etcd3+http://, zookeeper://, file://); unset: single node.
    # A secret because it may carry a password.
    backend_url: SecretStr | None = None
    member_id: str | None = Field(None, min_length=1, max_length=128,
                                  pattern=r"^[A-Za-z0-9_.:-]+$")  # default: host:api-port
    group_prefix: str = Field("appliance", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    refresh: float = Field(1.0, gt=0, le=60)  # how often membership changes are read
    rejoin_after: float = Field(2.0, gt=0, le=600)  # retry pause once the backend is lost
    timeout: float = Field(3.0, gt=0, le=60)  # a backend call slower than this: backend lost


class _PublisherSettings(_Section):
    kind: str  # each kind narrows it to its Literal (the discriminator)
    url: str = Field(pattern=r"^https?://")
    timeout: float = Field(10.0, gt=0)
    batch_size: int = Field(5000, ge=1)  # samples per request
    max_queue: int = Field(100_000, ge=1)  # samples kept in memory; the oldest go first
    max_backoff: float = Field(60.0, gt=0)

    @property
    def name(self) -> str:
        """How status pages and ``/metrics`` name it: kind and URL, minus any user:password."""
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        return f"{self.kind} {url}"


class RemoteWritePublisher(_PublisherSettings):
    """Samples to a Prometheus remote-write 1.0 receiver (VictoriaMetrics, Prometheus, Mimir)."""

    kind: Literal["prometheus_remote_write"]
    bearer_token: SecretStr | None = None


class GnocchiPublisher(_PublisherSettings):
    """Samples to a Gnocchi v1 API (or another appliance), resources created on the fly."""

    kind: Literal["gnocchi"]
    token: SecretStr | None = None  # sent as the HTTP Basic user, as gnocchi-basic does
    archive_policy: str | None = None  # for metrics it creates; None: the receiver's rules


Publisher = Annotated[RemoteWritePublisher | GnocchiPublisher, Field(discriminator="kind")]


class ReceiverSettings(_Section):
    """Pushes into the appliance: remote write and InfluxDB line protocol."""

    max_decompressed_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    influxdb_resource_tag: str = Field("host", min_length=1)  # Gnocchi's default
