"""MIB names -> OIDs at run time, from tables compiled ahead of time (:mod:`.mibcompile`).

A definition may name an object as ``IF-MIB::ifHCInOctets`` (a column or a table entry),
``SNMPv2-MIB::sysDescr.0`` (with an instance suffix) or give the numeric OID. The tables
are JSON files, one per module: those shipped in ``mibs/`` and those ``appliance snmp
compile-mibs`` wrote into ``pollsters.snmp.mibs_dir`` (a site module replaces a shipped
one of the same name). Reading them is a dict lookup; no MIB is parsed here.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

SHIPPED_DIR = Path(__file__).with_name("mibs")
_NAME = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)::([A-Za-z][A-Za-z0-9-]*)((?:\.[0-9]+)*)$")
_NUMERIC = re.compile(r"^\.?[0-9]+(\.[0-9]+)+$")

Oid = tuple[int, ...]


class MibNames:
    """Module -> symbol -> OID, with lookups in both directions."""

    def __init__(self, tables: dict[str, dict[str, str]]):
        self._tables = {
            module: {name: _numbers(oid) for name, oid in table.items()}
            for module, table in tables.items()
        }
        self._names = {
            oid: f"{module}::{name}"
            for module, table in sorted(self._tables.items())
            for name, oid in table.items()
        }

    @classmethod
    def load(cls, site_dir: Path | None = None) -> MibNames:
        """The shipped tables plus a site's compiled ones (``pollsters.snmp.mibs_dir``)."""
        if site_dir is None:
            return shipped()
        if not site_dir.is_dir():
            raise ValueError(f"{site_dir}: not a directory of compiled MIB tables")
        return cls({**_read_dir(SHIPPED_DIR), **_read_dir(site_dir)})

    @property
    def modules(self) -> list[str]:
        return sorted(self._tables)

    def resolve(self, text: str) -> Oid:
        """``MODULE::name[.suffix]`` or a numeric OID -> OID; ValueError names what failed."""
        text = text.strip()
        if _NUMERIC.match(text):
            return _numbers(text.lstrip("."))
        match = _NAME.match(text)
        if match is None:
            raise ValueError(f"{text!r} is neither a numeric OID nor MODULE::name")
        module, name, suffix = match.groups()
        table = self._tables.get(module)
        if table is None:
            raise ValueError(
                f"unknown MIB name {text!r}: module {module} is not compiled "
                "(add its MIB with `appliance snmp compile-mibs`)"
            )
        oid = table.get(name)
        if oid is None:
            raise ValueError(f"unknown MIB name {text!r}: {module} has no object {name}")
        return oid + (_numbers(suffix[1:]) if suffix else ())

    def name_of(self, oid: Oid) -> str | None:
        """``MODULE::name`` of exactly this OID (notification OIDs for traps), if known."""
        return self._names.get(oid)


def _numbers(dotted: str) -> Oid:
    return tuple(int(p) for p in dotted.split("."))


def _read_dir(directory: Path) -> dict[str, dict[str, str]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}


@functools.cache
def shipped() -> MibNames:
    """The shipped tables, read once per process."""
    return MibNames(_read_dir(SHIPPED_DIR))
