"""Discovery against a real snmpd on 127.0.0.1 (sweeps only ever cover 127.0.0.0/8 here):
`appliance snmp discover` prints what answered with which credential and groups, `--add`
makes runtime targets that a running pollster picks up at its next cycle and a new one
still has after a restart, and `/v1/snmp/target` lists and manages them (admin writes,
configured targets read-only, secrets never returned)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from appliance import tokens
from appliance.cli import main
from appliance.config import parse
from appliance.index import snmp_targets
from appliance.pollsters.snmp import build
from appliance.snmp_programs import attach_runtime_targets
from appliance.supervise import forked
from appliance.web.api import create_app
from tests.snmp.agents import poll, snmpd
from tests.test_ui import make_app

COMMUNITY = "disc-0very-c0mmunity"
AUTH_KEY, PRIV_KEY = "disc-auth-k3y", "disc-priv-k3y"


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    users = [f"sweeper SHA {AUTH_KEY} AES {PRIV_KEY}"]
    with snmpd(tmp_path_factory.mktemp("snmpd"), COMMUNITY, users) as port:
        yield port


def _config(tmp_path: Path, data_dir: Path, credentials: list[dict], **snmp) -> Path:
    path = tmp_path / "appliance.yaml"
    path.write_text(yaml.safe_dump({
        "data_dir": str(data_dir),
        "pollsters": {"snmp": {"discovery": {"credentials": credentials, "timeout": 0.5},
                               **snmp}},
    }))
    return path


def _discover(config: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["snmp", "discover", "--config", str(config), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_sweep_prints_what_answered_with_the_credential_that_worked(
    agent: int, tmp_path: Path
) -> None:
    v2c = _config(tmp_path, tmp_path / "data",
                  [{"community": "not-this-one"}, {"community": COMMUNITY}])
    out = _discover(v2c, "127.0.0.0/30", "--port", str(agent))
    line = next(x for x in out.splitlines() if x.startswith(f"127.0.0.1:{agent} "))
    assert "1.3.6.1.4.1.8072.3.2.10" in line and "[community]" in line  # net-snmp on Linux
    assert "ucd-snmp" in line and "if-mib" in line
    assert "1 answered, 1 silent, 2 probed" in out  # 127.0.0.2 stays silent
    assert COMMUNITY not in out

    v3 = _config(tmp_path, tmp_path / "data", [{
        "version": "3", "user": "sweeper", "auth_protocol": "SHA", "auth_key": AUTH_KEY,
        "priv_protocol": "AES", "priv_key": PRIV_KEY}])
    out = _discover(v3, "127.0.0.1/32", "--port", str(agent))
    assert "[v3 user sweeper]" in out and "1 answered" in out


def test_sweeps_are_bounded_before_anything_is_sent(tmp_path: Path) -> None:
    config = _config(tmp_path, tmp_path / "data", [{"community": COMMUNITY}])
    result = CliRunner().invoke(main, ["snmp", "discover", "--config", str(config),
                                       "127.0.0.0/8"])
    assert result.exit_code == 2
    assert "more than max_hosts" in result.output or "over max_hosts" in result.output
    result = CliRunner().invoke(main, ["snmp", "discover", "--config", str(config), "127.0.0"])
    assert result.exit_code == 2 and "networks.0" in result.output


def test_added_targets_are_polled_without_a_restart_and_survive_one(
    agent: int, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    config = _config(tmp_path, data_dir, [{"community": COMMUNITY}],
                     targets=[{"name": "configured", "host": "127.0.0.1", "port": 9}])
    settings = parse(yaml.safe_load(config.read_text()))
    running = build(settings)
    runtime = attach_runtime_targets(running, settings)
    try:
        assert running.targets() == ["configured"]
        out = _discover(config, "127.0.0.1/32", "--port", str(agent), "--add")
        name = f"127.0.0.1:{agent}"
        assert f"added 1 runtime targets: {name}" in out
        assert sorted(running.targets()) == [name, "configured"]  # its next cycle
        result = poll(running)
        report = {r.target: r for r in result.reports}[name]
        assert report.ok, report.error
        assert any(s.metric_name == "hardware.network.incoming.bytes" for s in result.samples)
        out = _discover(config, "127.0.0.1/32", "--port", str(agent), "--add")
        assert "added 0 runtime targets" in out  # seen again: not added twice
    finally:
        running.close()
        runtime.close()
    restarted = build(settings)
    runtime = attach_runtime_targets(restarted, settings)
    try:
        assert sorted(restarted.targets()) == [name, "configured"]
    finally:
        restarted.close()
        runtime.close()
    assert "snmp-discovery" not in forked(settings)
    looping = parse({"data_dir": str(data_dir),
                     "pollsters": {"snmp": {"discovery": {"networks": ["127.0.0.1/32"]}}}})
    assert "snmp-discovery" in forked(looping)


def test_the_api_manages_runtime_targets_and_never_returns_secrets(
    agent: int, tmp_path: Path, store
) -> None:
    settings = parse({"data_dir": str(store.settings.data_dir), "pollsters": {"snmp": {
        "targets": [{"name": "core", "host": "127.0.0.1", "community": "config-s3cret"}]}}})
    client = create_app(settings, store).test_client()
    admin = {"Authorization": f"Bearer {tokens.create(store.index, 'adm', 'admin')}"}
    reader = {"Authorization": f"Bearer {tokens.create(store.index, 'rd', 'reader')}"}
    new = {"name": "edge", "host": "127.0.0.1", "port": agent, "community": COMMUNITY,
           "groups": ["system", "if-mib"]}

    assert client.post("/v1/snmp/target", json=new).status_code == 401
    assert client.post("/v1/snmp/target", json=new, headers=reader).status_code == 403
    r = client.post("/v1/snmp/target", json=new, headers=admin)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["origin"] == "api" and "community" not in r.get_json()
    assert client.post("/v1/snmp/target", json=new, headers=admin).status_code == 409
    for bad, field in [({"name": "v3", "host": "h", "version": "3"}, "version 3 needs a user"),
                       ({**new, "name": "x", "groups": ["nope"]}, "groups"),
                       ({**new, "name": "y", "port": 0}, "port"),
                       ({**new, "name": "z", "secret": 1}, "secret")]:
        r = client.post("/v1/snmp/target", json=bad, headers=admin)
        assert r.status_code == 400 and field in r.get_json()["description"], r.get_json()

    listing = client.get("/v1/snmp/target", headers=reader)
    assert listing.status_code == 200
    text = listing.get_data(as_text=True)
    assert COMMUNITY not in text and "config-s3cret" not in text
    rows = {t["name"]: t for t in listing.get_json()}
    assert rows["core"]["read_only"] is True and rows["core"]["origin"] == "config"
    assert rows["edge"]["read_only"] is False and rows["edge"]["port"] == agent
    stored = snmp_targets.get(store.index, "edge")
    assert stored is not None and stored.definition["community"] == COMMUNITY  # pollable

    polled = build(settings)
    runtime = attach_runtime_targets(polled, settings)
    try:
        assert "edge" in polled.targets()
        assert {r.target: r for r in poll(polled).reports}["edge"].ok
        page = make_app(store, open_read=True).test_client().get("/")
        assert 'id="snmp-targets"' in page.get_data(as_text=True)
        assert "edge" in page.get_data(as_text=True)

        assert client.delete("/v1/snmp/target/core", headers=admin).status_code == 403
        assert client.delete("/v1/snmp/target/edge", headers=reader).status_code == 403
        assert client.delete("/v1/snmp/target/edge", headers=admin).status_code == 204
        assert client.get("/v1/snmp/target/edge", headers=reader).status_code == 404
        assert client.delete("/v1/snmp/target/edge", headers=admin).status_code == 404
        assert "edge" not in polled.targets()
    finally:
        polled.close()
        runtime.close()
    assert json.loads(client.get("/v1/snmp/target/core", headers=reader).data)["host"] == (
        "127.0.0.1")
