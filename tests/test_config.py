"""Config loading: defaults, typed validation, errors naming the file and the key."""

from __future__ import annotations

import subprocess
import sys

import pytest

from appliance import config


def _check(path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "appliance", "check-config", str(path)],
        capture_output=True, text=True, timeout=60,
    )


def test_empty_file_is_the_embedded_default(tmp_path):
    f = tmp_path / "empty.yaml"
    f.write_text("")
    settings = config.load(f)
    assert settings.api.listen == "127.0.0.1:8041"
    assert settings.pollsters.libvirt.uri == "qemu:///system"
    assert [(r.pattern, r.policy) for r in settings.archive_policy_rules] == [("*", "medium")]


def test_check_config_masks_secrets(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(
        "api:\n  tokens: [{name: ops, token: s3cr3t-t0ken-very-long, role: admin}]\n"
        "pollsters:\n  snmp:\n    targets:\n"
        "      - {name: sw1, host: 192.0.2.1, community: n0t-public}\n"
        "      - {name: sw2, host: 192.0.2.2, version: '3', user: mon,\n"
        "         auth_protocol: SHA, auth_key: authkey-secret, priv_protocol: AES,\n"
        "         priv_key: privkey-secret}\n"
    )
    out = _check(f)
    assert out.returncode == 0, out.stderr
    for secret in ("s3cr3t-t0ken-very-long", "n0t-public", "authkey-secret", "privkey-secret"):
        assert secret not in out.stdout
    assert "sw2" in out.stdout and "**********" in out.stdout


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("api:\n  listen: nowhere\n", "api.listen", "HOST:PORT"),
        ("api:\n  workers: 0\n", "api.workers", "greater than or equal to 1"),
        ("pollsters:\n  host:\n    intervall: 5\n", "pollsters.host.intervall", "Extra inputs"),
        ("pollsters:\n  snmp:\n    targets:\n      - {name: a, host: h, version: '3'}\n",
         "pollsters.snmp.targets.0", "needs a user"),
        ("archive_policy_rules:\n  - {pattern: 'x.*', policy: nope}\n", "", "unknown policy"),
        ("archive_policies:\n  p1: {definition: [{granularity: 60, timespan: 90}]}\n",
         "archive_policies.p1.definition.0", "multiple of granularity"),
        ("data_dir: [1, 2]\n", "data_dir", "path"),
        (f"data_dir: /var/lib/{'appliance-' * 8}\n", "data_dir", "at most 79 bytes"),
        ("api: [\n", "", "invalid YAML: line"),
        ("- just\n- a list\n", "", "must be a mapping"),
    ],
)
def test_malformed_config_exits_2_naming_file_and_key(tmp_path, text, key, problem):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    out = _check(f)
    assert out.returncode == 2
    assert str(f) in out.stderr
    assert key in out.stderr
    assert problem.lower() in out.stderr.lower()
    assert "Traceback" not in out.stderr


def test_missing_file_is_a_clear_error(tmp_path):
    out = _check(tmp_path / "absent.yaml")
    assert out.returncode == 2
    assert "absent.yaml" in out.stderr and "cannot read" in out.stderr
