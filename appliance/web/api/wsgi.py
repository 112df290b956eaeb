"""The WSGI entry point gunicorn loads: ``appliance.web.api.wsgi:application``.

The config file and data dir come from ``APPLIANCE_CONFIG`` / ``APPLIANCE_DATA_DIR``, set by
the supervisord config that ``appliance run`` renders.
"""

from __future__ import annotations

import os
from pathlib import Path

from appliance import config, retention
from appliance.web.api import create_app

_data_dir = os.environ.get("APPLIANCE_DATA_DIR")
_settings = config.load(
    os.environ.get("APPLIANCE_CONFIG") or None, Path(_data_dir) if _data_dir else None
)
application = create_app(_settings)
# A policy change's rebuild cut short by a crash or restart resumes as a worker boots.
retention.rebuild_in_background(_settings)
