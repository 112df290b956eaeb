"""MIB modules -> flat ``name -> OID`` tables, ahead of time (STYLE.md (b) 13, (c) 5).

Like snmp_exporter's generator: MIBs are compiled once into data (one JSON file per module,
``{"ifHCInOctets": "1.3.6.1.2.1.31.1.1.1.6", ...}``) that the pollster reads at start
(:mod:`.mibnames`); nothing parses a MIB or touches the network at run time.

Two inputs, both from Debian main packages installed by the Makefile, never downloaded:

- **MIB source text**, compiled with pysmi: net-snmp's MIBs (``libsnmp-base``:
  UCD-SNMP-MIB, UCD-DISKIO-MIB, LM-SENSORS-MIB, NET-SNMP-*) and SNMPv2-MIB, whose base
  modules (SNMPv2-SMI, -TC, -CONF) come from ``erlang-snmp``; a site's vendor MIBs go the
  same way (``appliance snmp compile-mibs DIR``).
- **pysmi's own output for the IETF MIBs Debian cannot ship as text** (IF-MIB,
  HOST-RESOURCES-MIB, ENTITY-MIB, ...: the RFC licence is not DFSG-free): ``python3-pysnmp4-
  mibs`` holds them compiled to pysnmp modules, which pysnmp's MIB builder loads here.

``shipped_tables()`` rebuilds the tables committed under ``mibs/``; a test regenerates
them and fails on any drift. Only the CLI and that test import this module (pysmi is slow
to import and not needed by the pollster).
"""

from __future__ import annotations

import glob
import json
import re
from pathlib import Path

SHIPPED_DIR = Path(__file__).with_name("mibs")
NET_SNMP_MIBS = Path("/usr/share/snmp/mibs")  # Debian libsnmp-base
ERLANG_MIBS_GLOB = "/usr/lib/erlang/lib/snmp-*/mibs"  # Debian erlang-snmp: SNMPv2-SMI etc.
PYSNMP_MIBS = Path("/usr/lib/python3/dist-packages/pysnmp_mibs")  # Debian python3-pysnmp4-mibs

# Compiled from source text (net-snmp's and SNMPv2-MIB).
SHIPPED_FROM_SOURCE = (
    "SNMPv2-MIB",
    "UCD-SNMP-MIB",
    "UCD-DISKIO-MIB",
    "LM-SENSORS-MIB",
    "NET-SNMP-MIB",
    "NET-SNMP-AGENT-MIB",
    "NET-SNMP-EXTEND-MIB",
)
# Loaded from python3-pysnmp4-mibs (no source text in Debian main).
SHIPPED_FROM_PYSNMP = (
    "IF-MIB",
    "HOST-RESOURCES-MIB",
    "HOST-RESOURCES-TYPES",
    "ENTITY-MIB",
    "IP-MIB",
    "TCP-MIB",
    "UDP-MIB",
    "BRIDGE-MIB",
    "POWER-ETHERNET-MIB",
    "UPS-MIB",
)
_HEADER = re.compile(rb"^\s*([A-Za-z][A-Za-z0-9-]*)\s+DEFINITIONS\s*::=\s*BEGIN", re.MULTILINE)
_DOTTED = re.compile(r"^[0-9]+(\.[0-9]+)+$")

Table = dict[str, str]  # symbol -> dotted OID


class MibCompileError(Exception):
    """A module that could not be compiled; the message names it and why."""


def base_source_dirs() -> list[Path]:
    """Where the SMI base modules and net-snmp's MIBs are found, after a site's own dirs."""
    found = [Path(p) for p in sorted(glob.glob(ERLANG_MIBS_GLOB))]
    return [NET_SNMP_MIBS, *found]


def modules_in(directory: Path) -> dict[str, Path]:
    """Module name -> file for every MIB file in ``directory`` (by its DEFINITIONS line)."""
    out: dict[str, Path] = {}
    for path in sorted(p for p in directory.iterdir() if p.is_file()):
        match = _HEADER.search(path.read_bytes()[:65536])
        if match:
            out[match.group(1).decode()] = path
    return out


def compile_sources(names: list[str], source_dirs: list[Path]) -> dict[str, Table]:
    """Compile modules from MIB source text with pysmi (JSON code generator).

    Imports are looked up in ``source_dirs`` and then :func:`base_source_dirs`. A module
    whose imports are missing but whose OIDs all resolve (UCD-SNMP-MIB takes only a type
    from HCNUM-TC) still compiles; every symbol whose OID did not resolve is left out.
    """
    from pysmi.codegen import JsonCodeGen
    from pysmi.compiler import MibCompiler
    from pysmi.parser import SmiStarParser
    from pysmi.reader import FileReader
    from pysmi.searcher import StubSearcher
    from pysmi.writer import CallbackWriter

    docs: dict[str, str] = {}
    compiler = MibCompiler(
        SmiStarParser(),
        JsonCodeGen(),
        CallbackWriter(lambda name, text, _ctx: docs.__setitem__(name, text)),
    )
    dirs = [*source_dirs, *base_source_dirs()]
    compiler.add_sources(*(FileReader(str(d), recursive=False) for d in dirs if d.is_dir()))
    compiler.add_searchers(StubSearcher(*JsonCodeGen.baseMibs))
    status = compiler.compile(*names, noDeps=True, genTexts=False, ignoreErrors=True)
    failed = [f"{n}: {_why(status.get(n))}" for n in names if n not in docs]
    if failed:
        raise MibCompileError("cannot compile " + "; ".join(failed))
    return {name: _oids(json.loads(docs[name])) for name in names}


def _why(status: object) -> str:
    """pysmi's status of a module, with the parser's error when it has one."""
    if status is None:
        return "missing"
    error = getattr(status, "error", None)
    return f"{status} ({error})" if error else str(status)


def _oids(doc: dict[str, object]) -> Table:
    table: Table = {}
    for symbol, node in doc.items():
        oid = node.get("oid") if isinstance(node, dict) else None
        if isinstance(oid, str) and _DOTTED.match(oid):
            table[symbol] = oid
    return table


def load_pysnmp_modules(names: list[str], directory: Path = PYSNMP_MIBS) -> dict[str, Table]:
    """Tables of modules that pysmi compiled to pysnmp code, loaded by pysnmp's builder."""
    from pysnmp.smi import builder
    from pysnmp.smi.error import MibLoadError, MibNotFoundError

    mib_builder = builder.MibBuilder()
    mib_builder.add_mib_sources(builder.DirMibSource(str(directory)))
    try:
        mib_builder.load_modules(*names)
    except (MibNotFoundError, MibLoadError) as exc:
        first = str(exc).split(" load error")[0]  # pysnmp appends whole tracebacks
        raise MibCompileError(f"cannot load compiled modules from {directory}: {first}") from None
    out: dict[str, Table] = {}
    for name in names:
        table: Table = {}
        for symbol, node in mib_builder.mibSymbols[name].items():
            oid = getattr(node, "name", None)
            if symbol != "PYSNMP_MODULE_ID" and isinstance(oid, tuple) and len(oid) > 1:
                table[symbol] = ".".join(map(str, oid))
        out[name] = table
    return out


def shipped_tables() -> dict[str, Table]:
    """The tables committed under ``mibs/``, rebuilt from the installed Debian packages."""
    tables = load_pysnmp_modules(list(SHIPPED_FROM_PYSNMP))
    tables.update(compile_sources(list(SHIPPED_FROM_SOURCE), []))
    return tables


def write_tables(tables: dict[str, Table], directory: Path) -> list[Path]:
    """One ``MODULE.json`` per module, sorted, so a regeneration diffs cleanly."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in sorted(tables.items()):
        path = directory / f"{name}.json"
        path.write_text(json.dumps(dict(sorted(table.items())), indent=1) + "\n")
        written.append(path)
    return written
