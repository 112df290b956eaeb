"""Data outlives versions: an upgrade from a release in this repo's history (Grenade-style),
schema migrations from every earlier version, and an older version refusing a newer index."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import requests

from appliance.index import Index
from appliance.index.schema import MIGRATIONS
from tests.conftest import wait_for
from tests.lifecycle import Writer, create_metrics
from tests.test_alarms import alarm_body, by_metrics

REPO = Path(__file__).resolve().parents[1]
#: The release an upgrade starts from: tag v0.1.0 (kept by commit, so that a clone without
#: tags finds it too).
RELEASE = "c7c07b56b5424add7c910fcd889b437c9d9d67d1"


@pytest.fixture(scope="module")
def release_python(tmp_path_factory) -> str:
    """A venv of its own running the release's code: its source from git history on the
    venv's path, the dependencies (the same versions the release was tested with) shared from
    this venv's site-packages."""
    root = tmp_path_factory.mktemp("release")
    src = root / "src"
    src.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", RELEASE, "appliance"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    venv = root / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path("
                           "'purelib'))"], capture_output=True, text=True, check=True)
    Path(site.stdout.strip(), "release.pth").write_text(
        f"{src}\n{sysconfig.get_path('purelib')}\n"
    )
    where = subprocess.run([str(python), "-c", "import appliance; print(appliance.__file__)"],
                           capture_output=True, text=True, check=True, cwd=root).stdout
    assert where.startswith(str(src))
    return str(python)


def _get(app, path, **params):
    r = requests.get(f"{app.url}{path}", headers=app.headers, params=params, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_upgrade_from_the_release_keeps_tokens_measures_alarms_and_ids(
    appliance_factory, release_python
):
    app = appliance_factory({"pollsters": {"host": {"interval": 2}}}, name="up",
                            python=release_python)
    assert _get(app, "/v1/status")["appliance"]["version"] == "0.1.0"
    writer = Writer(app, create_metrics(app, 2))
    writer.push(20)
    alarm = requests.post(f"{app.url}/v1/alarm", headers=app.headers, timeout=10,
                          json=alarm_body("upgrade", by_metrics(writer.metric_ids[:1])))
    assert alarm.status_code == 201, alarm.text
    reader = subprocess.run(
        [release_python, "-m", "appliance", "token", "--data-dir", str(app.data_dir),
         "create", "grafana", "--role", "reader"], capture_output=True, text=True, check=True,
        cwd=app.data_dir.parent,
    ).stdout.strip()

    def polled():
        return {m["name"]: m["id"] for m in _get(app, "/v1/metric")
                if m["name"].startswith("hardware.cpu.load")}

    wait_for(lambda: len(polled()) == 3, timeout=60, what="host metrics of the release")
    host_metrics = polled()
    hosts = [r["id"] for r in _get(app, "/v1/resource/host")]
    token = app.token
    app.stop()

    app.python = sys.executable  # the same data dir under this version
    app.start()
    assert _get(app, "/v1/status")["appliance"]["version"] != "0.1.0"
    assert app.token == token
    r = requests.get(f"{app.url}/v1/metric", timeout=10,
                     headers={"Authorization": f"Bearer {reader}"})
    assert r.status_code == 200
    assert [a["alarm_id"] for a in _get(app, "/v1/alarm")] == [alarm.json()["alarm_id"]]
    writer.push(20)
    assert writer.bad == []
    assert writer.missing() == {}  # one query per metric spans both versions
    span = _get(app, f"/v1/metric/{writer.metric_ids[0]}/measures", granularity=60)
    assert len(span) >= 40
    # Polling goes on under the same ids: no duplicated resource or metric.
    assert [r["id"] for r in _get(app, "/v1/resource/host")] == hosts
    wait_for(lambda: polled() == host_metrics, timeout=30, what="the same host metrics")
    load = host_metrics["hardware.cpu.load.1min"]
    before = len(_get(app, f"/v1/metric/{load}/measures", granularity=60, aggregation="max"))
    assert before >= 1


def _index_at(path: Path, version: int) -> None:
    """An index as an appliance of schema ``version`` left it, with a resource in it."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for script in MIGRATIONS[:version]:
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)
    conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(version),))
    if version >= 1:
        conn.execute("INSERT INTO resource_types(name) VALUES ('generic')")
        conn.execute(
            "INSERT INTO resources(id, type, original_resource_id, started_at, revision_start)"
            " VALUES ('7b0cd1c8-7c09-4f33-a3a4-6a3ab8b04a0e', 'generic', 'kept', 1, 1)"
        )
    conn.commit()
    conn.close()


@pytest.mark.parametrize("version", range(len(MIGRATIONS)))
def test_migrations_from_every_earlier_schema_version(tmp_path, version):
    path = tmp_path / "index.sqlite"
    _index_at(path, version)
    index = Index(path)
    try:
        assert index.schema_version == len(MIGRATIONS)
        kept = index.query("SELECT original_resource_id FROM resources")
        assert [r[0] for r in kept] == (["kept"] if version >= 1 else [])
        assert index.query("PRAGMA integrity_check")[0][0] == "ok"
    finally:
        index.close()


def test_an_older_version_refuses_a_newer_data_dir(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    _index_at(data_dir / "index.sqlite", len(MIGRATIONS))
    with sqlite3.connect(data_dir / "index.sqlite") as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                     (str(len(MIGRATIONS) + 1),))
    out = subprocess.run([sys.executable, "-m", "appliance", "run", "--data-dir", str(data_dir)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert str(data_dir) in out.stderr and "newer than this appliance knows" in out.stderr
    assert "Traceback" not in out.stderr
