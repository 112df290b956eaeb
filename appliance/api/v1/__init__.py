"""Gnocchi v1 API blueprints, one module per resource kind.

Each module has a ``bp`` and may add ``OPENAPI_PATHS`` / ``OPENAPI_SCHEMAS`` to the document
that :mod:`appliance.api.openapi` serves.
"""

from appliance.api.v1 import (
    aggregates,
    alarms,
    archive_policies,
    batch,
    metrics,
    resources,
    status,
)

#: The v1 blueprint modules (a plain tuple, not entry points).
BLUEPRINT_MODULES = (status, resources, metrics, archive_policies, batch, aggregates, alarms)
