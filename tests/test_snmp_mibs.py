"""MIB names: the shipped tables match what the Debian MIB packages compile to (no drift),
names resolve with instance suffixes, an unknown name is a config error naming the file,
the key and the name, and `appliance snmp compile-mibs` turns a site's MIB directory into
tables the definitions can use."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from appliance.cli import main
from appliance.pollsters.snmp import mibcompile
from appliance.pollsters.snmp.definitions import DefinitionError, load_groups
from appliance.pollsters.snmp.mibnames import MibNames, shipped

# A MIB that ships as source text in Debian's libsnmp-base but not in our tables: it plays
# the site's vendor MIB.
VENDOR_MIB = Path("/usr/share/snmp/mibs/UCD-DEMO-MIB.txt")


def test_shipped_tables_are_what_the_packages_compile_to(tmp_path: Path) -> None:
    """Regenerate (as `appliance snmp compile-mibs --shipped` does) and compare: a change of
    the generator or of the packages must come with regenerated, committed tables."""
    committed = {p.stem: p.read_text() for p in mibcompile.SHIPPED_DIR.glob("*.json")}
    out = mibcompile.write_tables(mibcompile.shipped_tables(), tmp_path)
    assert {p.stem: p.read_text() for p in out} == committed


def test_names_resolve_to_oids_with_instance_suffixes() -> None:
    mibs = shipped()
    assert mibs.resolve("IF-MIB::ifHCInOctets") == (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6)
    assert mibs.resolve("SNMPv2-MIB::sysDescr.0") == (1, 3, 6, 1, 2, 1, 1, 1, 0)
    assert mibs.resolve("UCD-SNMP-MIB::ssCpuIdle.0") == (1, 3, 6, 1, 4, 1, 2021, 11, 11, 0)
    assert mibs.resolve(".1.3.6.1.2.1.1.3.0") == (1, 3, 6, 1, 2, 1, 1, 3, 0)
    assert mibs.name_of((1, 3, 6, 1, 6, 3, 1, 1, 5, 3)) == "IF-MIB::linkDown"
    with pytest.raises(ValueError, match="module NOPE-MIB is not compiled"):
        mibs.resolve("NOPE-MIB::x")
    with pytest.raises(ValueError, match="IF-MIB has no object ifHCInOctetz"):
        mibs.resolve("IF-MIB::ifHCInOctetz")
    with pytest.raises(ValueError, match="neither a numeric OID nor MODULE::name"):
        mibs.resolve("ifHCInOctets")


def _definition(directory: Path, oid: str) -> Path:
    path = directory / "site.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "group": "site",
                "device": {
                    "meters": [{"name": "site.value", "unit": "x", "kind": "gauge", "oid": oid}]
                },
            }
        )
    )
    return path


def test_unknown_name_is_a_config_error_naming_file_key_and_name(tmp_path: Path) -> None:
    defs = tmp_path / "defs"
    defs.mkdir()
    site = _definition(defs, "IF-MIB::ifHCInOctetz")
    with pytest.raises(DefinitionError) as caught:
        load_groups(defs)
    message = str(caught.value)
    assert str(site) in message
    assert "device.meters.0.oid.0.oid" in message
    assert "IF-MIB::ifHCInOctetz" in message

    config = tmp_path / "appliance.yaml"
    config.write_text(yaml.safe_dump({"pollsters": {"snmp": {"definitions_dir": str(defs)}}}))
    result = CliRunner().invoke(main, ["check-config", str(config)])
    assert result.exit_code == 2
    assert str(config) in result.output and str(site) in result.output
    assert "device.meters.0.oid.0.oid" in result.output and "ifHCInOctetz" in result.output


def test_compile_mibs_makes_a_site_mib_usable_in_definitions(tmp_path: Path) -> None:
    vendor, out, defs = tmp_path / "vendor", tmp_path / "compiled", tmp_path / "defs"
    vendor.mkdir()
    defs.mkdir()
    shutil.copy(VENDOR_MIB, vendor / "UCD-DEMO-MIB.my")  # file name need not be the module's
    _definition(defs, "UCD-DEMO-MIB::ucdDemoPublicString.0")
    with pytest.raises(DefinitionError, match="module UCD-DEMO-MIB is not compiled"):
        load_groups(defs)

    result = CliRunner().invoke(main, ["snmp", "compile-mibs", str(vendor), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "UCD-DEMO-MIB.json: 7 names" in result.output
    meter = load_groups(defs, MibNames.load(out))["site"].spec.device.meters[0]
    assert meter.oid[0].oid == (1, 3, 6, 1, 4, 1, 2021, 14, 1, 1, 2, 0)
    # The shipped modules stay available next to the site's.
    assert MibNames.load(out).resolve("IF-MIB::ifAlias") == shipped().resolve("IF-MIB::ifAlias")


def test_compile_mibs_reports_a_broken_mib_and_writes_nothing(tmp_path: Path) -> None:
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    (vendor / "BROKEN-MIB.txt").write_text(
        "BROKEN-MIB DEFINITIONS ::= BEGIN\n foo OBJECT-TYPE ::= {{ oops\nEND\n"
    )
    out = tmp_path / "compiled"
    result = CliRunner().invoke(main, ["snmp", "compile-mibs", str(vendor), "--out", str(out)])
    assert result.exit_code == 1
    assert "cannot compile BROKEN-MIB" in result.output
    assert not out.exists()
