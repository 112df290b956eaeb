"""The Ansible role applied for real to this machine (``-c local``), twice.

The CI machine runs no systemd, so the converge uses ``appliance_manage_service=false``,
which skips only the talking to systemd. Everything else is real: apt, the service user,
a virtualenv made from the system Python with a wheel built from this checkout, the config
rendered from role variables and validated by the installed ``appliance check-config``.
Then the INSTALLED ``appliance run`` is started as the service user, ``/v1/status`` must
answer with the generated admin token, the whole process tree must stop, and a second
converge must change nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance import config

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
UNIT = Path("/etc/systemd/system/appliance.service")
BACKUP_UNITS = ("appliance-backup.service", "appliance-backup.timer")
RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)

pytestmark = [
    pytest.mark.skipif(
        os.geteuid() != 0, reason="the role installs packages and a user: root only"
    ),
    pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="no system Python"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ansible_env(tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-local"),
        "ANSIBLE_REMOTE_TEMP": str(tmp / "ansible-remote"),
    }


def converge(tmp: Path, variables: dict[str, object]) -> tuple[dict[str, int], str]:
    """Run ansible/site.yml against this machine; return the PLAY RECAP counters and the
    playbook's output."""
    inventory = tmp / "inventory.ini"
    inventory.write_text(
        "[appliance]\n"
        "localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n"
    )
    extra = tmp / "vars.json"
    extra.write_text(json.dumps(variables))
    result = subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            "-i",
            str(inventory),
            "ansible/site.yml",
            "-e",
            f"@{extra}",
        ],
        cwd=REPO,
        env=ansible_env(tmp),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    recap = RECAP.search(result.stdout.rpartition("PLAY RECAP")[2])
    assert recap, result.stdout[-3000:]
    return {k: int(v) for k, v in recap.groupdict().items() if k != "host"}, result.stdout


def build_wheel(dest: Path) -> Path:
    subprocess.run(
        [str(VENV_BIN / "pip"), "wheel", "-q", "--no-deps", "-w", str(dest), str(REPO)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = dest.glob("appliance-*.whl")
    return wheel


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains ``text`` (every process of the converged install
    runs from its prefix or data dir)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(proc.name))
    return found


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    """(HTTP status, body); status 0 while nothing listens yet."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except TimeoutError:  # the first answer opens the store: slow on a busy machine
        return 0, b""
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError | TimeoutError):
            return 0, b""
        raise


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A world-traversable temp dir: the service user must reach the venv and data dir,
    which pytest's 0700 tmp_path would hide from it."""
    tmp = Path(tempfile.mkdtemp(prefix="appliance-converge-"))
    tmp.chmod(0o755)
    yield tmp
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def no_installed_unit() -> Iterator[None]:
    """The converge writes the unit into /etc/systemd/system; refuse to run over a real
    installation, and remove what the test put there."""
    if UNIT.exists():
        pytest.skip(f"{UNIT} exists: this machine has a real installation")
    yield
    UNIT.unlink(missing_ok=True)
    shutil.rmtree(UNIT.with_name("appliance.service.d"), ignore_errors=True)
    for name in BACKUP_UNITS:
        UNIT.with_name(name).unlink(missing_ok=True)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_role_converges_runs_and_is_idempotent(scratch: Path, no_installed_unit: None) -> None:
    port = free_port()
    prefix, data_dir, config_dir = scratch / "opt", scratch / "data", scratch / "etc"
    variables = {
        "appliance_manage_service": False,
        "appliance_install_source": "wheel",
        "appliance_wheel": str(build_wheel(scratch / "dist")),
        "appliance_prefix": str(prefix),
        "appliance_data_dir": str(data_dir),
        "appliance_config_dir": str(config_dir),
        "appliance_api_listen": f"127.0.0.1:{port}",
        "appliance_api_workers": 1,
        # nothing listens there: the SNMP pollster must simply report the target down
        "appliance_snmp_targets": [
            {"name": "lab-switch", "host": "127.0.0.1", "port": free_port(), "community": "lab"}
        ],
        "appliance_libvirt_uri": "test:///default",
        "appliance_archive_policies": {
            "short": {"definition": [{"granularity": 60, "timespan": 3600}]}
        },
        "appliance_archive_policy_rules": [
            {"name": "cpu", "pattern": "cpu*", "policy": "short"},
            {"name": "default", "pattern": "*", "policy": "low"},
        ],
        "appliance_alarm_evaluation_interval": 30,
        "appliance_backup_dir": str(scratch / "backups"),
    }

    first, _ = converge(scratch, variables)
    assert first["failed"] == 0 and first["changed"] > 0

    # The rendered config is what the variables say, readable by the service group only.
    config_file = config_dir / "appliance.yaml"
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o640
    settings = config.load(config_file)
    assert settings.api.port == port
    assert settings.data_dir == data_dir
    assert settings.pollsters.libvirt.uri == "test:///default"
    assert [t.name for t in settings.pollsters.snmp.targets] == ["lab-switch"]
    assert settings.pollsters.snmp.targets[0].community.get_secret_value() == "lab"
    assert [r.policy for r in settings.archive_policy_rules] == ["short", "low"]
    assert settings.alarms.evaluation_interval == 30
    # The venv comes from the system Python, which the service user can execute.
    assert (prefix / "venv/bin/python").resolve().is_relative_to("/usr")
    # The unit files went in (only systemctl was skipped) and point at this install.
    drop_in = UNIT.with_name("appliance.service.d") / "role.conf"
    assert f"ExecStart={prefix}/venv/bin/appliance run --config {config_file}" in (
        drop_in.read_text().splitlines()
    )
    verify = subprocess.run(
        ["systemd-analyze", "verify", "appliance.service", *BACKUP_UNITS],
        capture_output=True, text=True,
    )
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr

    # Start the INSTALLED appliance as the service user, as the unit would: setpriv execs
    # it (runuser would stay as its parent and SIGKILL it 2 s after a SIGTERM, before
    # supervisord has stopped its children). Its output goes
    # to a file the service user owns: supervisord reopens /dev/stdout for its children,
    # which a pipe created by root (pytest) would refuse with EACCES.
    log = scratch / "appliance.log"
    log.touch()
    shutil.chown(log, "appliance", "appliance")
    with log.open("ab") as log_fd:
        appliance = subprocess.Popen(
            [
                "setpriv", "--reuid=appliance", "--regid=appliance", "--init-groups",
                "--reset-env", "--", str(prefix / "venv/bin/appliance"), "run",
                "--config", str(config_file),
            ],
            stdout=log_fd, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd="/",
            start_new_session=True,
        )  # fmt: skip
    try:
        token_file = data_dir / "admin-token"
        status = None
        for _ in range(120):
            assert appliance.poll() is None, log.read_text()
            if token_file.exists() and token_file.read_text().strip():
                status, body = get(
                    f"http://127.0.0.1:{port}/v1/status", token_file.read_text().strip()
                )
                if status == 200:
                    break
            time.sleep(1)
        assert status == 200, log.read_text()[-4000:]
        assert isinstance(json.loads(body), dict)
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert token_file.stat().st_uid == int(
            subprocess.check_output(["id", "-u", "appliance"], text=True)
        )
        assert get(f"http://127.0.0.1:{port}/v1/status")[0] == 401
        # The nightly backup, run as the timer's unit would: the service user, its command.
        backup_unit = UNIT.with_name("appliance-backup.service").read_text()
        command = next(line.split("=", 1)[1] for line in backup_unit.splitlines()
                       if line.startswith("ExecStart="))
        command = command.replace("$$", "$").replace("%%", "%")
        made = subprocess.run(
            ["setpriv", "--reuid=appliance", "--regid=appliance", "--init-groups",
             "--reset-env", "--", "/bin/sh", "-c", command.removeprefix("/bin/sh -c ")
             .strip("'")], capture_output=True, text=True, cwd="/", timeout=300,
        )
        assert made.returncode == 0, made.stderr
        archives = list((scratch / "backups").glob("appliance-*.tar.gz"))
        assert len(archives) == 1 and stat.S_IMODE(archives[0].stat().st_mode) == 0o600
    finally:
        appliance.terminate()  # SIGTERM to supervisord only, as KillMode=mixed does
        try:
            appliance.wait(timeout=60)
        finally:
            left = processes_mentioning(str(scratch))
            for pid in left:
                os.kill(pid, signal.SIGKILL)
    assert left == [], f"processes left after SIGTERM: {left}"

    second, output = converge(scratch, variables)
    assert second["failed"] == 0
    assert second["changed"] == 0, output[-6000:]
