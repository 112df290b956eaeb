"""The values a query passes around, and what a store must offer to be queried."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from appliance.promql.plan import Matcher


@dataclass(slots=True)
class SeriesInfo:
    """One selectable series: its labels (``__name__`` included) and whether it counts."""

    labels: dict[str, str]
    counter: bool
    ref: object = None  # the source's handle


@dataclass(slots=True)
class Block:
    """Buckets of some of the selected series at one granularity (see :mod:`windows`)."""

    granularity: float
    first: float
    values: np.ndarray  # [len(rows), K]
    rows: list[int]  # positions in the series list given to Source.read


class Source(Protocol):
    def select(self, matchers: Sequence[Matcher]) -> list[SeriesInfo]:
        """Every series whose labels satisfy all matchers."""

    def read(self, series: Sequence[SeriesInfo], method: str, start: float, stop: float,
             step: float) -> tuple[list[Block], list[str]]:
        """Buckets labelled in ``[start - 2g, stop]`` at the granularity best serving
        ``step``, and warnings (a coarser granularity than ``step``)."""


@dataclass(slots=True)
class Scalar:
    values: np.ndarray  # [T]


@dataclass(slots=True)
class Vector:
    labels: list[dict[str, str]]
    values: np.ndarray  # [n, T], NaN = no sample
