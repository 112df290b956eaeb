"""The sensors pollster on sysfs-shaped fixture trees and recorded ``sensors -j`` outputs.

No machine here has sensors, so the kernel's side is a fixture tree modelled on real chips
(tests/fixtures/hwmon/<board>/sys) read by the same code as /sys, and lm-sensors' side is
its JSON recorded from the same boards, produced by a command (``cat``) in place of
``sensors -j``. Golden files hold the expected samples; regenerate one after a deliberate
change with ``UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from appliance.config import SensorsSettings
from appliance.model import PollResult, resource_id_for
from appliance.pollsters.sensors import SensorsPollster

FIXTURES = Path(__file__).parent / "fixtures"
BOARDS = sorted(p.name for p in (FIXTURES / "hwmon").iterdir() if p.is_dir())
HOST = "lab1"


def pollster(sys_root: Path, lm_json: Path | None = None, **settings) -> SensorsPollster:
    lm = {"lm_sensors": lm_json is not None}
    if lm_json is not None:
        lm["lm_sensors_command"] = ["cat", str(lm_json)]
    return SensorsPollster(
        SensorsSettings(hwmon_root=sys_root / "class/hwmon",
                        thermal_root=sys_root / "class/thermal", **{**lm, **settings}),
        hostname=HOST,
    )


def poll(p: SensorsPollster) -> PollResult:
    return p.poll(p.targets(), time.monotonic() + 30)


def render(result: PollResult) -> str:
    """One line per sample: key, meter, unit, value, attributes; sorted, diff-friendly."""
    lines = []
    for s in result.samples:
        attrs = json.dumps(s.resource.attributes, sort_keys=True)
        lines.append(f"{s.resource.original_resource_id} {s.metric_name} {s.unit} "
                     f"{s.value:g} {attrs}")
    return "\n".join(sorted(lines)) + "\n"


def golden(path: Path, text: str) -> None:
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def sys_of(board: str) -> Path:
    return FIXTURES / "hwmon" / board / "sys"


def by_key(result: PollResult) -> dict[str, tuple[str, float, dict]]:
    return {s.resource.original_resource_id: (s.metric_name, s.value, s.resource.attributes)
            for s in result.samples}


@pytest.mark.parametrize("board", BOARDS)
def test_raw_hwmon_matches_golden(board):
    golden(FIXTURES / "hwmon" / board / "expected.txt", render(poll(pollster(sys_of(board)))))


@pytest.mark.parametrize("board", BOARDS)
def test_lm_sensors_view_matches_golden(board):
    p = pollster(sys_of(board), FIXTURES / "lm-sensors" / f"{board}.json")
    golden(FIXTURES / "lm-sensors" / f"{board}.expected.txt", render(poll(p)))


def test_raw_hwmon_converts_units_and_keeps_labels_and_limits():
    values = by_key(poll(pollster(sys_of("intel-z790"))))
    assert values["sensor://lab1/coretemp-isa-0000/temp1"] == (
        "hardware.sensor.temperature", 45.0,
        {"chip": "coretemp-isa-0000", "feature": "temp1", "label": "Package id 0",
         "host": HOST, "source": "hwmon", "max": 80.0, "crit": 100.0})
    assert values["sensor://lab1/nct6798-isa-0290/in0"][:2] == ("hardware.sensor.voltage", 1.032)
    assert values["sensor://lab1/nct6798-isa-0290/fan2"][:2] == ("hardware.sensor.fan", 1236.0)
    assert values["sensor://lab1/nvme-pci-0200/temp1"][2]["label"] == "Composite"
    assert values["sensor://lab1/thermal_zone0/temp1"][1:] == (27.8, {
        "chip": "thermal_zone0", "feature": "temp1", "label": "acpitz", "host": HOST,
        "source": "thermal", "crit": 105.0})
    amd = by_key(poll(pollster(sys_of("amd-x570"))))
    assert amd["sensor://lab1/amdgpu-pci-0c00/power1"][:2] == ("hardware.sensor.power", 7.0)
    assert amd["sensor://lab1/k10temp-pci-00c3/temp1"][1] == 52.875
    # Resource ids are derived from the natural key only.
    result = poll(pollster(sys_of("amd-x570")))
    assert {s.resource.id for s in result.samples} == {
        resource_id_for(k) for k in amd}


@pytest.mark.parametrize("board", BOARDS)
def test_both_paths_give_the_same_resources_and_meters_for_the_same_feature(board):
    raw = poll(pollster(sys_of(board)))
    lm = poll(pollster(sys_of(board), FIXTURES / "lm-sensors" / f"{board}.json"))
    raw_meta = {s.resource.id: (s.metric_name, s.unit) for s in raw.samples}
    lm_meta = {s.resource.id: (s.metric_name, s.unit) for s in lm.samples}
    assert set(lm_meta) <= set(raw_meta)  # lm-sensors only ever hides (`ignore`) features
    assert all(raw_meta[rid] == lm_meta[rid] for rid in lm_meta)


def test_lm_sensors_applies_the_operators_sensors_conf():
    raw = by_key(poll(pollster(sys_of("intel-z790"))))
    lm_result = poll(pollster(sys_of("intel-z790"), FIXTURES / "lm-sensors/intel-z790.json"))
    lm = by_key(lm_result)
    nct = "sensor://lab1/nct6798-isa-0290"
    # compute in4 @*12: the divider is undone, raw sysfs shows the pin voltage
    assert (raw[f"{nct}/in4"][1], lm[f"{nct}/in4"][1]) == (1.008, 12.096)
    assert lm[f"{nct}/in4"][2]["label"] == "+12V" and raw[f"{nct}/in4"][2]["label"] == "in4"
    assert lm[f"{nct}/fan2"][2]["source"] == "lm-sensors"
    for ignored in ("in5", "in6", "fan3"):
        assert f"{nct}/{ignored}" in raw and f"{nct}/{ignored}" not in lm
    # AUXTIN0's input could not be read: lm-sensors printed its limits only.
    assert f"{nct}/temp3" not in lm
    report = {r.target: r for r in lm_result.reports}[nct.rsplit("/", 1)[1]]
    assert report.detail["unreadable"] == ["AUXTIN0: no value"]
    # Thermal zones are not lm-sensors chips and still come from the kernel.
    assert lm["sensor://lab1/thermal_zone1/temp1"][2]["source"] == "thermal"


def test_a_chip_lm_sensors_does_not_list_still_comes_from_hwmon(tmp_path):
    listed = json.loads((FIXTURES / "lm-sensors/amd-x570.json").read_text())
    del listed["amdgpu-pci-0c00"]
    (tmp_path / "partial.json").write_text(json.dumps(listed))
    values = by_key(poll(pollster(sys_of("amd-x570"), tmp_path / "partial.json")))
    assert values["sensor://lab1/amdgpu-pci-0c00/temp1"][2]["source"] == "hwmon"
    assert values["sensor://lab1/k10temp-pci-00c3/temp1"][2]["source"] == "lm-sensors"


@pytest.mark.parametrize("output", ["", '{"k10temp-pci-00c3": {"Tctl": {"temp1_input": 5'])
def test_broken_lm_sensors_output_falls_back_to_hwmon(tmp_path, output):
    (tmp_path / "broken.json").write_text(output)
    result = poll(pollster(sys_of("amd-x570"), tmp_path / "broken.json"))
    reports = {r.target: r for r in result.reports}
    assert "not JSON" in reports["lm-sensors"].error
    assert {s.resource.attributes["source"] for s in result.samples} == {"hwmon"}
    assert len(result.samples) == 10


def test_lm_sensors_not_installed_is_absent_not_an_error(tmp_path):
    p = pollster(sys_of("amd-x570"), tmp_path / "unused.json",
                 lm_sensors_command=[str(tmp_path / "no-such-sensors"), "-j"])
    result = poll(p)
    assert "lm-sensors" not in {r.target for r in result.reports}
    assert all(r.ok for r in result.reports) and len(result.samples) == 10


def test_lm_sensors_failing_is_reported_and_hwmon_used(tmp_path):
    script = tmp_path / "sensors"
    script.write_text("#!/bin/sh\necho 'sensors: libsensors config error' >&2\nexit 2\n")
    script.chmod(0o755)
    result = poll(pollster(sys_of("amd-x570"), lm_sensors=True,
                           lm_sensors_command=[str(script), "-j"]))
    report = {r.target: r for r in result.reports}["lm-sensors"]
    assert report.error.endswith("exited 2: sensors: libsensors config error")
    assert len(result.samples) == 10


def test_a_board_without_a_hwmon_fixture_parses_from_json_alone(tmp_path):
    result = poll(pollster(tmp_path / "no-sys", FIXTURES / "lm-sensors/raspberry-pi4.json"))
    assert by_key(result) == {"sensor://lab1/cpu_thermal-virtual-0/temp1": (
        "hardware.sensor.temperature", 48.686,
        {"chip": "cpu_thermal-virtual-0", "feature": "temp1", "label": "temp1", "host": HOST,
         "source": "lm-sensors"})}
    report = {r.target: r for r in result.reports}["rpi_volt-isa-0000"]
    assert report.ok and report.detail["unreadable"] == ["in0: no value"]


def test_chip_filters_match_driver_names_and_chip_names():
    only = poll(pollster(sys_of("intel-z790"), include_chips=["coretemp", "nvme-pci-*"]))
    assert {s.resource.attributes["chip"] for s in only.samples} == {
        "coretemp-isa-0000", "nvme-pci-0200"}
    without = poll(pollster(sys_of("intel-z790"), exclude_chips=["nct*", "thermal_zone*"]))
    assert {s.resource.attributes["chip"] for s in without.samples} == {
        "acpitz-acpi-0", "nvme-pci-0200", "coretemp-isa-0000"}


def test_unreadable_and_odd_files_drop_their_feature_only(tmp_path):
    sys_root = tmp_path / "sys"
    shutil.copytree(sys_of("amd-x570"), sys_root, symlinks=True)
    gpu = sys_root / "class/hwmon/hwmon2"
    (gpu / "temp2_input").unlink()
    (gpu / "temp2_input").mkdir()  # read() fails with EISDIR
    (gpu / "temp3_input").write_text("N/A\n")
    result = poll(pollster(sys_root))
    values = by_key(result)
    assert "sensor://lab1/amdgpu-pci-0c00/temp2" not in values
    assert "sensor://lab1/amdgpu-pci-0c00/temp3" not in values
    assert values["sensor://lab1/amdgpu-pci-0c00/temp1"][1] == 41.0
    report = {r.target: r for r in result.reports}["amdgpu-pci-0c00"]
    assert report.ok and report.detail["unreadable"] == [
        "temp2_input: Is a directory", "temp3_input: not a number: 'N/A'"]


def test_old_drivers_with_attributes_on_the_device_are_read(tmp_path):
    sys_root = tmp_path / "sys"
    shutil.copytree(sys_of("amd-x570"), sys_root, symlinks=True)
    k10 = sys_root / "class/hwmon/hwmon1"
    dev = Path(os.path.realpath(k10 / "device"))
    for f in k10.iterdir():
        if f.name != "device":
            shutil.move(f, dev / f.name)
    values = by_key(poll(pollster(sys_root)))
    assert values["sensor://lab1/k10temp-pci-00c3/temp3"][1] == 44.5


def test_a_hung_chip_does_not_stall_the_others(tmp_path):
    sys_root = tmp_path / "sys"
    shutil.copytree(sys_of("intel-z790"), sys_root, symlinks=True)
    fifo = sys_root / "class/hwmon/hwmon3/temp7_input"
    fifo.unlink()
    os.mkfifo(fifo)  # read() blocks until a writer appears: a chip that never answers
    p = pollster(sys_root, chip_timeout=0.3)
    try:
        first = poll(p)
        second = poll(p)
    finally:
        # Release the stuck reader so its thread ends with the test.
        threading.Thread(target=lambda: fifo.write_text("45000\n"), daemon=True).start()
    for result, error in ((first, "no answer within 0.3s"),
                          (second, "previous call still running")):
        reports = {r.target: r for r in result.reports}
        assert reports["hwmon3"].error == error
        chips = {s.resource.attributes["chip"] for s in result.samples}
        assert chips == {"acpitz-acpi-0", "nvme-pci-0200", "coretemp-isa-0000",
                         "thermal_zone0", "thermal_zone1"}


def test_no_sensors_at_all_is_an_empty_poll_not_an_error(tmp_path):
    result = poll(pollster(tmp_path / "nothing"))
    assert result.samples == [] and result.reports == []


def test_the_real_sensors_command_of_this_machine(tmp_path):
    """The installed `sensors -j`, whatever this machine has: chips parsed, or absent."""
    if shutil.which("sensors") is None:
        pytest.skip("lm-sensors is not installed (apt lm-sensors)")
    result = poll(pollster(tmp_path / "no-sys", lm_sensors=True))
    assert all(r.ok for r in result.reports), result.reports
    assert {s.resource.attributes["source"] for s in result.samples} <= {"lm-sensors"}
