"""The WSGI entry point gunicorn loads: ``appliance.api.wsgi:application``.

The config file and data dir come from ``APPLIANCE_CONFIG`` / ``APPLIANCE_DATA_DIR``, set by
the supervisord config that ``appliance run`` renders.
"""

from __future__ import annotations

import os
from pathlib import Path

from appliance import config
from appliance.api import create_app

_data_dir = os.environ.get("APPLIANCE_DATA_DIR")
application = create_app(
    config.load(os.environ.get("APPLIANCE_CONFIG") or None, Path(_data_dir) if _data_dir else None)
)
