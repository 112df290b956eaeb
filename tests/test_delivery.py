"""Delivery artefacts that cannot boot here are still checked by their own tools.

ansible-lint (production profile) for the role, ``systemd-analyze verify`` for the units,
``packer validate`` with Debian's Packer for the image template, ``ruby -c`` for the
Vagrantfile and ``sh -n`` for the build scripts. Each test runs the real tool and fails on
its diagnostics, not just on its exit code where the tool only warns.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def tool_env() -> dict[str, str]:
    """The environment with the venv's tools (ansible-playbook, ansible-lint) on PATH."""
    return {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}", "NO_COLOR": "1"}


def run(*argv: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_role_passes_ansible_lint_production_profile() -> None:
    result = run(VENV_BIN / "ansible-lint", "--nocolor", "--profile", "production", "ansible/")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr


def _offline_root(tmp_path: Path, executables: list[str]) -> Path:
    """A filesystem root for ``systemd-analyze verify --root``: systemd's own units (for
    the default dependencies) plus stand-ins for the executables our units name, so that
    verify checks our units and not this machine's installation state."""
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    for exe in executables:
        stand_in = root / exe.lstrip("/")
        stand_in.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy("/bin/true", stand_in)
    (root / "etc/systemd/system").mkdir(parents=True)
    return root


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_units_verify_clean(tmp_path: Path) -> None:
    root = _offline_root(
        tmp_path, ["/opt/appliance/venv/bin/appliance", "/usr/local/sbin/appliance-firstboot"]
    )
    units = {
        "appliance.service": REPO / "systemd/appliance.service",
        "appliance-firstboot.service": REPO
        / "ansible/roles/appliance/files/appliance-firstboot.service",
    }
    for name, src in units.items():
        shutil.copy(src, root / "etc/systemd/system" / name)
    result = run("systemd-analyze", "verify", f"--root={root}", *units, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # verify exits 0 on unknown keys and unparsable values, it only prints them
    assert result.stderr.strip() == "", result.stderr


def test_unit_has_the_promised_hardening() -> None:
    unit = (REPO / "systemd/appliance.service").read_text()
    for line in (
        "User=appliance",
        "Restart=on-failure",
        "After=network-online.target libvirtd.service libvirtd.socket",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "StateDirectory=appliance",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    ):
        assert line in unit.splitlines(), line
    # hwmon lives in /sys: hiding or masking it would silence the sensors pollster
    assert "ProtectKernelTunables=yes" in unit.splitlines()
    assert "InaccessiblePaths=/sys" not in unit


@pytest.mark.skipif(not shutil.which("packer"), reason="packer not installed (apt packer)")
def test_packer_template_validates(tmp_path: Path) -> None:
    # Only appliance.pkr.hcl: plugins.pkr.hcl holds the required_plugins block that
    # Debian's Packer 1.6.6 rejects and current Packer needs for `packer init`.
    result = run(
        "packer",
        "validate",
        "-var",
        "base_image=packer/output/base.qcow2",
        "-var",
        "accelerator=tcg",
        "-var",
        f"output_directory={tmp_path / 'out'}",  # must not exist yet, says the qemu builder
        "packer/appliance.pkr.hcl",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    fmt = run("packer", "fmt", "-check", "-diff", "packer/")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_vagrantfile_is_valid_ruby() -> None:
    if not shutil.which("ruby"):
        pytest.skip("ruby not installed (apt ruby): cannot check the Vagrantfile's syntax")
    result = run("ruby", "-c", "Vagrantfile")
    assert result.returncode == 0, result.stderr
    assert "Syntax OK" in result.stdout


@pytest.mark.parametrize("path", sorted((REPO / "packer").rglob("*.sh")), ids=lambda p: p.name)
def test_build_scripts_parse(path: Path) -> None:
    shell = "bash" if path.read_text().startswith("#!/usr/bin/env bash") else "sh"
    result = run(shell, "-n", path)
    assert result.returncode == 0, result.stderr
