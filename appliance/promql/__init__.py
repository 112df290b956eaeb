"""PromQL over the appliance's buckets: parse -> plan -> evaluate over numpy arrays.

Pure: no Flask, no config, no I/O. A store is reached only through the
:class:`~appliance.promql.model.Source` protocol (series selection and bucket reads), which
``appliance.web.api.promql_source`` implements over the index and the RRD files.
"""

from appliance.promql.evaluate import evaluate
from appliance.promql.model import Block, Scalar, SeriesInfo, Source, Vector
from appliance.promql.plan import Matcher, QueryError, Unsupported, format_query, parse

__all__ = ["Block", "Matcher", "QueryError", "Scalar", "SeriesInfo", "Source", "Unsupported",
           "Vector", "evaluate", "format_query", "parse"]
