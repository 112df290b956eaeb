"""Cross-series aggregation (Gnocchi's ``/v1/aggregates`` operations), pure: no Flask, no I/O.

``parse(operations)`` validates an operation tree, ``references(tree)`` lists the
``(ref, aggregation)`` series it reads, and ``evaluate(tree, series, ...)`` computes it over
:class:`Series` (timestamps and values as numpy arrays). The API fetches the series from RRD;
the alarm evaluator can feed the same functions.
"""

from appliance.aggregation.evaluate import Block, Series, UnAggregable, evaluate
from appliance.aggregation.operations import OperationError, parse, references
from appliance.aggregation.reducers import REDUCERS

__all__ = [
    "REDUCERS",
    "Block",
    "OperationError",
    "Series",
    "UnAggregable",
    "evaluate",
    "parse",
    "references",
]
