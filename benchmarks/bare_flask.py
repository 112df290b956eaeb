"""The floor for benchmarks/api.py's GET: Flask under the same gunicorn, no appliance code.

Serves the bytes of the file named by ``BARE_BODY`` (a real measures response captured from
the appliance) at any path, from memory: no auth, no index, no RRD, no JSON encoding.
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask, Response

BODY = Path(os.environ["BARE_BODY"]).read_bytes()
app = Flask(__name__)


@app.get("/<path:_path>")
def serve(_path: str) -> Response:
    return Response(BODY, mimetype="application/json")
