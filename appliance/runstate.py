"""Small JSON state files under ``run/state/``: what one process tells the others.

Agents and the alarm evaluator are separate processes from the API; the coordination
membership they hold and their publishers' queues live in their memory. Each writes its view
here (atomically: temp file, then rename) and the API, ``/metrics`` and the status page read
them. Names come from the config (source kinds, publisher kinds), never from a request.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

_SAFE = re.compile(r"[^A-Za-z0-9_.:-]")


def _dir(run_dir: Path, kind: str) -> Path:
    return run_dir / "state" / kind


def write(run_dir: Path, kind: str, name: str, data: dict[str, Any]) -> None:
    """Replace ``kind/name``'s state; a failed write is the reader's staleness, not an error."""
    directory = _dir(run_dir, kind)
    path = directory / f"{_SAFE.sub('_', name)}.json"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass


def read_all(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    """Every state of ``kind``, sorted by file name; unreadable files are left out."""
    out = []
    for path in sorted(_dir(run_dir, kind).glob("*.json")):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return out
