"""SNMP meter definitions: YAML data -> validated, typed groups (STYLE.md (b) 13, (c) 1).

A definition file is one *group* (``if-mib``, ``ucd-snmp``, ...). It says which device kinds
it applies to, what the device itself carries (scalar OIDs: attributes and meters of the
``snmp_device`` resource) and which tables it reads (one resource per row). An OID is
numeric or a MIB name (``IF-MIB::ifHCInOctets``) looked up in tables compiled ahead of time
(:mod:`.mibnames`); an unknown name fails the file. Values go through a named converter
and a numeric scale, never through ``eval``.

The engine never reads YAML; it sees :class:`Group` objects only.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from appliance.model import Kind
from appliance.pollsters.snmp.converters import CONVERTERS
from appliance.pollsters.snmp.mibnames import MibNames, shipped

SHIPPED_DIR = Path(__file__).with_name("meters")
_OID = re.compile(r"^[0-9]+(\.[0-9]+)+$")

Oid = tuple[int, ...]


def parse_oid(text: str) -> Oid:
    """``"1.3.6.1"`` -> ``(1, 3, 6, 1)`` (the form the engine compares and slices)."""
    text = text.strip().lstrip(".")
    if not _OID.match(text):
        raise ValueError(f"{text!r} is not a numeric OID")
    return tuple(int(p) for p in text.split("."))


class DefinitionError(Exception):
    """A definition file that cannot be used; the message names the file and the key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Model):
    """One OID a value may come from, with a scale applied to that source only.

    Lets ``ifHighSpeed`` (Mbit/s, scale 1e6) be preferred over ``ifSpeed`` (bit/s).
    """

    oid: Oid
    scale: float = 1.0

    @field_validator("oid", mode="before")
    @classmethod
    def _resolve(cls, v: Any, info: ValidationInfo) -> Oid:
        mibs = (info.context or {}).get("mibs") or shipped()
        return mibs.resolve(str(v))


def _known_converter(name: str) -> str:
    if name not in CONVERTERS:
        raise ValueError(f"unknown converter {name!r} (known: {', '.join(sorted(CONVERTERS))})")
    return name


def _sources(v: Any) -> list[Any]:
    """Accept ``oid: X``, ``oid: [X, Y]`` and ``oid: [{oid: X, scale: S}, ...]``."""
    items = v if isinstance(v, list) else [v]
    return [item if isinstance(item, dict) else {"oid": str(item)} for item in items]


class Combine(_Model):
    """A second value of the same row (or scalar group) combined with the first.

    The only arithmetic a definition can ask for: ``minus`` (memory used = total - avail)
    and ``times`` (hrStorageUsed x hrStorageAllocationUnits).
    """

    op: Literal["minus", "times"]
    oid: tuple[Source, ...] = Field(min_length=1)

    @field_validator("oid", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> list[Any]:
        return _sources(v)


class ValueSpec(_Model):
    """Where one value comes from: the first source the agent has, converted, then scaled.

    Sources are in order of preference (64-bit counters first); ``combine`` applies one
    fixed operation with another value before the final ``scale``.
    """

    oid: tuple[Source, ...] = Field(min_length=1)
    convert: str = "number"
    scale: float = 1.0
    combine: Combine | None = None

    @field_validator("oid", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> list[Any]:
        return _sources(v)

    @field_validator("convert")
    @classmethod
    def _known(cls, v: str) -> str:
        return _known_converter(v)

    def oids(self) -> list[Oid]:
        """Every OID this value may read (all sources, and those of ``combine``)."""
        out = [s.oid for s in self.oid]
        if self.combine is not None:
            out.extend(s.oid for s in self.combine.oid)
        return out


class AttributeSpec(_Model):
    """A resource attribute: read from the agent (``oid``), a constant, or from the target:
    its ``name``, ``host``, or ``device_id`` (the id of its ``snmp_device`` resource, which
    links an interface, a disk or a sensor to its device).

    Attributes are text by default (``convert: text``); a change becomes a history revision
    in the index, so put slowly changing things here (ifAlias, oper status), not counters.
    """

    oid: tuple[Source, ...] | None = None
    convert: str = "text"
    scale: float = 1.0
    const: str | None = None
    target: Literal["name", "host", "device_id"] | None = None

    @field_validator("oid", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> list[Any] | None:
        return None if v is None else _sources(v)

    @field_validator("convert")
    @classmethod
    def _known(cls, v: str) -> str:
        return _known_converter(v)

    @model_validator(mode="after")
    def _one_origin(self) -> AttributeSpec:
        given = [x for x in (self.oid, self.const, self.target) if x is not None]
        if len(given) != 1:
            raise ValueError("an attribute needs exactly one of oid, const or target")
        return self

    def oids(self) -> list[Oid]:
        return [s.oid for s in self.oid or ()]


class MeterSpec(ValueSpec):
    """A meter: Ceilometer-style name, unit and kind, plus where its value comes from.

    ``where`` keeps a row only when each named attribute matches a regular expression
    (LM-SENSORS ``lmMiscSensorsTable`` rows become ``.power`` or ``.current`` by label).
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    unit: str
    kind: Kind
    where: dict[str, str] = {}

    @field_validator("where")
    @classmethod
    def _regexes(cls, v: dict[str, str]) -> dict[str, str]:
        for pattern in v.values():
            re.compile(pattern)
        return v


class DeviceSpec(_Model):
    """What a group adds to the device resource (``snmp_device``) from scalar OIDs."""

    attributes: dict[str, AttributeSpec] = {}
    meters: list[MeterSpec] = []


class TableSpec(_Model):
    """A table read with GETBULK: one resource per row, keyed by the row's index.

    The resource's natural key is ``snmp://<target name>/<key>/<index>``, so its id is stable
    across restarts of the appliance and of the agent.
    """

    type: str = Field(min_length=1, pattern=r"^[a-z0-9_]+$")
    key: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    attributes: dict[str, AttributeSpec] = {}
    meters: list[MeterSpec] = Field(min_length=1)


class DeviceMatch(_Model):
    """Device kinds a group applies to: shell globs on sysObjectID and sysDescr (any match)."""

    sys_object_id: list[str] = []
    sys_descr: list[str] = []

    def matches(self, sys_object_id: str, sys_descr: str) -> bool:
        return any(fnmatch.fnmatchcase(sys_object_id, p) for p in self.sys_object_id) or any(
            fnmatch.fnmatchcase(sys_descr, p) for p in self.sys_descr
        )


class GroupFile(_Model):
    """One definition file."""

    group: str = Field(min_length=1, pattern=r"^[a-z0-9_.-]+$")
    description: str = ""
    # Groups of one family are alternatives: a group whose ``devices`` match the device
    # replaces the family's generic group (the one without ``devices``).
    family: str | None = None
    devices: DeviceMatch | None = None
    device: DeviceSpec = DeviceSpec()
    tables: list[TableSpec] = []
    # Notifications (MIB names or OIDs) the trap receiver turns into events, besides
    # linkDown, linkUp, coldStart and warmStart.
    traps: list[Oid] = []

    @field_validator("traps", mode="before")
    @classmethod
    def _resolve_traps(cls, v: Any, info: ValidationInfo) -> list[Oid]:
        mibs = (info.context or {}).get("mibs") or shipped()
        return [mibs.resolve(str(item)) for item in (v if isinstance(v, list) else [v])]


@dataclass(frozen=True, slots=True)
class Group:
    """A loaded definition group: what the engine and metering see of a definition file."""

    spec: GroupFile

    @property
    def name(self) -> str:
        return self.spec.group

    def applies_to(self, sys_object_id: str, sys_descr: str) -> bool:
        return self.spec.devices is None or self.spec.devices.matches(sys_object_id, sys_descr)


def load_file(path: Path, mibs: MibNames | None = None) -> Group:
    """Parse and validate one definition file; names resolve through ``mibs`` (default:
    the shipped tables)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Group(GroupFile.model_validate(data, context={"mibs": mibs}))
    except OSError as exc:
        raise DefinitionError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{path}: invalid YAML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise DefinitionError(f"{path}: {problems}") from None


def load_groups(extra_dir: Path | None = None, mibs: MibNames | None = None) -> dict[str, Group]:
    """The shipped groups, then those of ``extra_dir``; a site's group replaces a shipped one
    of the same name (that is how a site changes a shipped definition without forking it)."""
    groups: dict[str, Group] = {}
    dirs = [SHIPPED_DIR] + ([extra_dir] if extra_dir is not None else [])
    for directory in dirs:
        if not directory.is_dir():
            raise DefinitionError(f"{directory}: not a directory of meter definitions")
        for path in sorted(directory.glob("*.yaml")):
            group = load_file(path, mibs)
            groups[group.name] = group
    return groups


def select(
    groups: dict[str, Group], wanted: list[str], sys_object_id: str, sys_descr: str
) -> list[Group]:
    """The groups to read from one device.

    ``wanted`` is the target's ``groups`` setting (empty: all). Groups whose ``devices``
    do not match are dropped; within a family, a matching device-specific group replaces
    the generic fallback.
    """
    candidates = candidates_for(groups, wanted)
    matching = [g for g in candidates if g.applies_to(sys_object_id, sys_descr)]
    specific = {g.spec.family for g in matching if g.spec.family and g.spec.devices}
    return [g for g in matching if g.spec.devices is not None or g.spec.family not in specific]


def candidates_for(groups: dict[str, Group], wanted: list[str]) -> list[Group]:
    """The groups a target may use before its device kind is known; unknown names fail."""
    unknown = [name for name in wanted if name not in groups]
    if unknown:
        raise DefinitionError(
            f"unknown definition groups: {', '.join(unknown)} (known: {', '.join(sorted(groups))})"
        )
    return [groups[n] for n in wanted] if wanted else list(groups.values())
