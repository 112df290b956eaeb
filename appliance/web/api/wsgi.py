"""The WSGI entry point gunicorn loads: ``appliance.web.api.wsgi:application``.

The config file and data dir come from ``APPLIANCE_CONFIG`` / ``APPLIANCE_DATA_DIR``, set by
the supervisord config that ``appliance run`` renders.
"""

from __future__ import annotations

import os
from pathlib import Path

from appliance import config
from appliance.web.api import create_app

_data_dir = os.environ.get("APPLIANCE_DATA_DIR")
_settings = config.load(
    os.environ.get("APPLIANCE_CONFIG") or None, Path(_data_dir) if _data_dir else None
)
# No store is opened here: under --preload this runs in gunicorn's master, and an SQLite
# connection open across the fork of a worker breaks SQLite's locking in the worker (its
# reads then miss committed rows). Each worker opens its own at first use, and resumes a
# policy rebuild cut short by a crash or restart as it boots (serving.post_fork).
application = create_app(_settings)
