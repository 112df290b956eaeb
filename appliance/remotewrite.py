"""Prometheus remote write 1.0 on the wire: snappy block of a protobuf ``WriteRequest``.

Used both ways: the receiver (``POST /v1/prometheus/write``) decodes, the publisher encodes.
The four messages of ``prompb/types.proto`` and ``remote.proto`` that 1.0 needs are declared
here as a descriptor built in Python, so no ``protoc`` runs at build time and no generated
code is committed; the ``protobuf`` runtime (upb, in C) does the parsing and serialising.
Snappy is the raw *block* format (not framed), from ``cramjam``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

#: Request headers a remote-write 1.0 sender sets (and a receiver may check).
HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


class PayloadError(ValueError):
    """A body that is not a remote-write 1.0 request; ``str()`` says what is wrong."""


class PayloadTooLarge(PayloadError):
    """A body whose decompressed size is over the receiver's cap."""


def _message_classes():
    T = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(
        name="appliance/prometheus_remote_write.proto", package="prometheus", syntax="proto3"
    )

    def message(name: str, *fields: tuple[str, int, int, str | None, bool]) -> None:
        msg = fdp.message_type.add(name=name)
        for fname, number, ftype, type_name, repeated in fields:
            field = msg.field.add(name=fname, number=number, type=ftype)
            field.label = T.LABEL_REPEATED if repeated else T.LABEL_OPTIONAL
            if type_name:
                field.type_name = f".prometheus.{type_name}"

    message("Label", ("name", 1, T.TYPE_STRING, None, False),
            ("value", 2, T.TYPE_STRING, None, False))
    message("Sample", ("value", 1, T.TYPE_DOUBLE, None, False),
            ("timestamp", 2, T.TYPE_INT64, None, False))
    message("TimeSeries", ("labels", 1, T.TYPE_MESSAGE, "Label", True),
            ("samples", 2, T.TYPE_MESSAGE, "Sample", True))
    # Field 3 (metadata) is left out: a parser keeps it as an unknown field and we ignore it.
    message("WriteRequest", ("timeseries", 1, T.TYPE_MESSAGE, "TimeSeries", True))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("prometheus.WriteRequest"))


WriteRequest = _message_classes()


@dataclass(frozen=True, slots=True)
class Series:
    """One time series: its labels (``__name__`` included) and ``(epoch s, value)`` points."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


Labels = tuple[tuple[str, str], ...]

#: A label set's serialised TimeSeries is kept for this many label sets (a poll repeats them).
ENCODER_CACHE = 200_000


class Encoder:
    """Builds bodies, serialising each label set once (a publisher sends the same series every
    poll): the cached bytes of a labels-only ``TimeSeries`` are merged (parsed in C) into the
    new one, which costs a fraction of adding the labels one by one from Python."""

    def __init__(self) -> None:
        self._labels: dict[Labels, bytes] = {}

    def encode(self, series: Iterable[tuple[Labels, Sequence[tuple[float, float]]]]) -> bytes:
        """``[(sorted label pairs, [(epoch s, value), ...]), ...]`` -> snappy body."""
        req = WriteRequest()
        cache = self._labels
        for labels, points in series:
            head = cache.get(labels)
            if head is None:
                if len(cache) >= ENCODER_CACHE:
                    cache.clear()
                one = WriteRequest().timeseries.add()
                for name, value in labels:
                    one.labels.add(name=name, value=value)
                head = cache[labels] = one.SerializeToString()
            ts = req.timeseries.add()
            ts.MergeFromString(head)
            for when, value in points:
                ts.samples.add(value=value, timestamp=int(round(when * 1000)))
        return bytes(cramjam.snappy.compress_raw(req.SerializeToString()))


def encode(series: Iterable[Series]) -> bytes:
    """A snappy-compressed ``WriteRequest`` body (labels sorted by name, as the spec wants)."""
    return Encoder().encode((tuple(sorted(s.labels.items())), s.points) for s in series)


def decompressed_size(body: bytes) -> int:
    """The uncompressed length a snappy block announces (its leading uvarint).

    Read before decompressing, so that a 20:1 bomb is refused without allocating it.
    """
    size = shift = 0
    for i, byte in enumerate(body[:5]):
        size |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return size
        shift += 7
        if i == 4:
            break
    raise PayloadError("body is not snappy block data (bad length header)")


def decode(body: bytes, max_size: int) -> list[Series]:
    """Parse a remote-write body; :class:`PayloadError` names what is wrong with it."""
    if not body:
        raise PayloadError("empty body")
    size = decompressed_size(body)
    if size > max_size:
        raise PayloadTooLarge(
            f"decompressed body would be {size} bytes, over the {max_size}-byte limit"
        )
    try:
        raw = bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise PayloadError(f"body is not snappy block data: {exc}") from None
    req = WriteRequest()
    try:
        req.ParseFromString(raw)
    except DecodeError as exc:
        raise PayloadError(f"body is not a protobuf WriteRequest: {exc}") from None
    out = []
    for i, ts in enumerate(req.timeseries):
        labels = {label.name: label.value for label in ts.labels}
        if not labels.get("__name__"):
            raise PayloadError(f"timeseries[{i}] has no __name__ label")
        out.append(Series(labels, [(s.timestamp / 1000.0, s.value) for s in ts.samples]))
    return out


def label_pairs(labels: dict[str, str], skip: Sequence[str] = ()) -> str:
    """``k="v",...`` sorted by name (the Prometheus text form), leaving out ``skip``."""
    return ",".join(
        f'{k}="{v}"' for k, v in sorted(labels.items()) if k not in skip
    )
