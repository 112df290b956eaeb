"""``appliance backup`` of a running appliance and ``appliance restore`` into a new one."""

from __future__ import annotations

import subprocess
import sys

import requests

from tests.conftest import wait_for
from tests.lifecycle import Writer, create_metrics
from tests.test_alarms import alarm_body, by_metrics


def appliance_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance", *args],
                          capture_output=True, text=True, timeout=120)


def contents(app, metric_ids: list[str]) -> dict:
    """What an operator would compare: resources, metrics, alarms (without their changing
    state) and the measures of the given metrics."""
    def get(path: str, **params):
        r = requests.get(f"{app.url}{path}", headers=app.headers, params=params, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    return {
        "resources": sorted((r["id"], r["type"]) for r in get("/v1/resource/generic")),
        "metrics": sorted((m["id"], m["name"]) for m in get("/v1/metric")),
        "alarms": sorted((a["alarm_id"], a["name"], a["type"]) for a in get("/v1/alarm")),
        "measures": {mid: get(f"/v1/metric/{mid}/measures", granularity=60)
                     for mid in metric_ids},
    }


def test_backup_while_writing_restores_the_same_appliance(appliance_factory, tmp_path):
    app = appliance_factory({"pollsters": {"host": {"enabled": False}}})
    writer = Writer(app, create_metrics(app, 3))
    writer.push(30)
    alarm = requests.post(f"{app.url}/v1/alarm", headers=app.headers, timeout=10,
                          json=alarm_body("disk", by_metrics(writer.metric_ids[:1])))
    assert alarm.status_code == 201, alarm.text
    reader = appliance_cli("token", "--data-dir", str(app.data_dir), "create", "ops",
                           "--role", "reader").stdout.strip()
    before = contents(app, writer.metric_ids)

    writer.start()  # the backup is taken while writes go on
    try:
        wait_for(lambda: writer.round > 35, what="writes under way")
        archive = tmp_path / "nightly.tar.gz"
        made = appliance_cli("backup", "--config", str(app.config_path),
                             "--data-dir", str(app.data_dir), str(archive))
        assert made.returncode == 0, made.stderr
        assert "backed up" in made.stderr
    finally:
        writer.stop()
    assert archive.stat().st_mode & 0o777 == 0o600  # it holds the tokens' secrets

    restored_dir = tmp_path / "b" / "data"
    done = appliance_cli("restore", str(archive), "--data-dir", str(restored_dir))
    assert done.returncode == 0, done.stderr
    copy = appliance_factory({"pollsters": {"host": {"enabled": False}}}, name="b")
    assert copy.token == app.token  # the same admin token, from the restored data dir
    after = contents(copy, writer.metric_ids)
    assert after["resources"] == before["resources"]
    assert after["metrics"] == before["metrics"]
    assert after["alarms"] == before["alarms"]
    for mid, points in before["measures"].items():  # everything acknowledged before
        assert after["measures"][mid][: len(points)] == points
    r = requests.get(f"{copy.url}/v1/metric", timeout=10,
                     headers={"Authorization": f"Bearer {reader}"})
    assert r.status_code == 200  # a token made with the CLI survives too


def test_restore_refuses_a_damaged_archive_and_a_non_empty_dir(appliance_factory, tmp_path):
    app = appliance_factory({"pollsters": {"host": {"enabled": False}}})
    Writer(app, create_metrics(app, 1)).push(3)
    archive = tmp_path / "b.tar.gz"
    assert appliance_cli("backup", "--data-dir", str(app.data_dir), str(archive)).returncode == 0
    data = archive.read_bytes()

    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(data[: len(data) // 2])
    flipped = tmp_path / "flipped.tar.gz"
    flipped.write_bytes(data[:-40] + bytes([data[-40] ^ 0xFF]) + data[-39:])
    for bad in (truncated, flipped):
        target = tmp_path / f"into-{bad.stem}"
        out = appliance_cli("restore", str(bad), "--data-dir", str(target))
        assert out.returncode == 1
        assert "damaged archive" in out.stderr, out.stderr
        assert not target.exists() or not any(target.iterdir())  # nothing left behind

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something").write_text("x")
    out = appliance_cli("restore", str(archive), "--data-dir", str(busy))
    assert out.returncode == 1 and "is not empty" in out.stderr
    assert sorted(p.name for p in busy.iterdir()) == ["something"]
