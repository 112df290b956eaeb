"""A consistent copy of the index while other processes write to it."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def copy_index(source: Path, destination: Path) -> None:
    """Copy the index with SQLite's online backup API: one consistent snapshot, taken page by
    page while writers go on (a plain file copy of a WAL-mode database can be torn)."""
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(destination)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def check_index(path: Path) -> str | None:
    """None if the file is a sound SQLite database, else what SQLite says is wrong."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return str(exc)
    return None if result == "ok" else result
