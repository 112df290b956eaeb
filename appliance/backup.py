"""``appliance backup`` and ``appliance restore``: one archive of a running appliance.

The archive is a gzip'd tar holding a manifest (format, versions, SHA-256 of every file),
the index (SQLite's online backup), the RRD files and write-ahead log segments
(:mod:`appliance.storage.snapshot`), and the data dir's secrets (the generated admin token,
the session key, the TLS key and certificate). It is written under a temporary name and
renamed, with mode 0600 since it holds secrets. A restore checks every file against the
manifest in a scratch directory before anything appears at the target, so a damaged archive
leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import time
import zlib
from pathlib import Path

from appliance import __version__
from appliance.config import Settings
from appliance.index.backup import check_index, copy_index
from appliance.index.schema import MIGRATIONS
from appliance.storage.rrdcached import RrdcachedClient
from appliance.storage.snapshot import copy_measures, flush_all

FORMAT = 1
MANIFEST = "manifest.json"
INDEX = "index.sqlite"
#: Files and folders of the data dir that are kept as they are (secrets among them).
KEPT = ("admin-token", "session-key", "tls")


class BackupError(Exception):
    """Why a backup or a restore cannot be done, in words for the operator."""


def backup(settings: Settings, archive: Path) -> dict:
    """Write one consistent archive of the data dir to ``archive``; return its manifest."""
    if not settings.index_path.is_file():
        raise BackupError(f"{settings.data_dir} holds no appliance index")
    archive = archive.resolve()
    with tempfile.TemporaryDirectory(prefix=".backup-", dir=archive.parent) as scratch:
        root = Path(scratch) / "appliance"
        root.mkdir()
        flush_all(RrdcachedClient(settings.rrdcached_socket, timeout=60))
        copy_index(settings.index_path, root / INDEX)
        files = [Path(INDEX), *copy_measures(settings.rrd_dir, settings.data_dir / "wal", root)]
        for name in KEPT:
            source = settings.data_dir / name
            if source.is_dir():
                shutil.copytree(source, root / name)
                files += [p.relative_to(root) for p in sorted((root / name).rglob("*"))
                          if p.is_file()]
            elif source.is_file():
                shutil.copy2(source, root / name)
                files.append(Path(name))
        manifest = {
            "format": FORMAT,
            "appliance_version": __version__,
            "schema_version": len(MIGRATIONS),
            "created_at": time.time(),
            "files": {str(rel): _sha256(root / rel) for rel in files},
        }
        (root / MANIFEST).write_text(json.dumps(manifest, indent=1))
        partial = archive.with_name(f".{archive.name}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w:gz") as tar:
            tar.add(root / MANIFEST, arcname=MANIFEST)
            for rel in files:
                tar.add(root / rel, arcname=str(rel))
            out.flush()
        os.replace(partial, archive)
    return manifest


def restore(archive: Path, data_dir: Path) -> dict:
    """Unpack ``archive`` into ``data_dir`` (absent or empty); return its manifest."""
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise BackupError(f"{data_dir} is not empty: restore into a new or empty directory")
    if not archive.is_file():
        raise BackupError(f"{archive}: no such file")
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".restore-", dir=data_dir.parent) as scratch:
        root = Path(scratch) / "data"
        try:
            with tarfile.open(archive, "r:gz") as tar:
                for member in tar:
                    tar.extract(_safe(archive, member), root)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise BackupError(f"{archive}: damaged archive ({exc})") from exc
        manifest = _check(archive, root)
        root.chmod(0o700)
        if data_dir.exists():
            data_dir.rmdir()
        root.rename(data_dir)
    return manifest


def _safe(archive: Path, member: tarfile.TarInfo) -> tarfile.TarInfo:
    """Only plain files and folders inside the target (Debian's Python 3.11.2 predates
    tarfile's extraction filters, so the check is made here)."""
    parts = Path(member.name).parts
    if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
        raise BackupError(f"{archive}: not an appliance backup (member {member.name!r})")
    member.mode = 0o600 if member.isfile() else 0o700
    return member


def _check(archive: Path, root: Path) -> dict:
    try:
        manifest = json.loads((root / MANIFEST).read_text())
        files: dict[str, str] = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{archive}: not an appliance backup (no readable manifest)") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{archive}: backup format {manifest.get('format')} is not {FORMAT}")
    if manifest.get("schema_version", 0) > len(MIGRATIONS):
        raise BackupError(
            f"{archive}: made by a newer appliance (schema {manifest['schema_version']}, "
            f"this one knows {len(MIGRATIONS)}): restore it with that version or later"
        )
    present = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} - {MANIFEST}
    if present != set(files):
        missing, extra = sorted(set(files) - present), sorted(present - set(files))
        raise BackupError(f"{archive}: damaged archive (missing {missing[:5]}, "
                          f"unexpected {extra[:5]})")
    for rel, digest in files.items():
        if _sha256(root / rel) != digest:
            raise BackupError(f"{archive}: damaged archive ({rel} does not match its checksum)")
    problem = check_index(root / INDEX)
    if problem:
        raise BackupError(f"{archive}: damaged archive (index: {problem})")
    (root / MANIFEST).unlink()
    return manifest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
