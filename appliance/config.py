"""One YAML file -> validated, typed settings.

Every key has a default, so an empty file (or none) is a working config. Unknown keys are
errors: a typo must not silently fall back to a default. Secrets are ``SecretStr`` so that
printing the config (``appliance check-config``) or logging it never shows them.
"""

from __future__ import annotations

import fnmatch
import os
import re
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from appliance.configbase import Interval, _Section
from appliance.scaleout_config import CoordinationSettings, Publisher, ReceiverSettings

CONFIG_VERSION = 1
DEFAULT_DATA_DIR = Path("/var/lib/appliance")
#: The unix sockets the appliance listens on, under ``<data_dir>/run``.
RRDCACHED_SOCKET = "rrdcached.sock"
SUPERVISOR_SOCKET = "supervisor.sock"
#: A unix socket's path holds at most 107 bytes (sun_path, with its NUL); supervisord binds
#: ``<socket>.<pid>`` first and renames it, so its path needs room for a 7-digit pid too.
SOCKET_PATH_MAX = 107 - len(".4194304")


class ConfigError(Exception):
    """A config file that cannot be used; ``str()`` names the file, the key and the problem."""

    def __init__(self, path: str, problems: list[tuple[str, str]]):
        self.path = path
        self.problems = problems
        super().__init__(
            "\n".join(f"{path}: {key}: {msg}" if key else f"{path}: {msg}" for key, msg in problems)
        )


# --- API ------------------------------------------------------------------------------------


class Token(_Section):
    name: str = Field(min_length=1, max_length=64)
    token: SecretStr
    role: Literal["admin", "reader"] = "reader"

    @field_validator("token")
    @classmethod
    def _long_enough(cls, v: SecretStr) -> SecretStr:
        if len(v.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return v


class TlsFiles(_Section):
    """A certificate (chain, PEM) and its private key for HTTPS on the API port."""

    cert_file: Path
    key_file: Path

    @field_validator("cert_file", "key_file")
    @classmethod
    def _readable(cls, v: Path) -> Path:
        if not os.access(v, os.R_OK):
            raise ValueError(f"{v} is not a readable file")
        return v


class ApiSettings(_Section):
    listen: str = "127.0.0.1:8041"
    # HTTPS on the API port: "auto" (a self-signed certificate generated into the data dir
    # at first start) or {cert_file, key_file}; null: plain HTTP (only for loopback).
    tls: Literal["auto"] | TlsFiles | None = None

    @field_validator("tls", mode="before")
    @classmethod
    def _tls_shape(cls, v: Any) -> Any:
        """One message per mistake, not one per member of the union."""
        if v is None or v == "auto" or isinstance(v, TlsFiles):
            return v
        if isinstance(v, dict):
            try:
                return TlsFiles.model_validate(v)
            except ValidationError as exc:
                raise ValueError("; ".join(
                    f"{_key_path(e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                    for e in exc.errors()
                )) from None
        raise ValueError("must be auto, null, or {cert_file, key_file}")
    workers: int = Field(2, ge=1, le=64)
    tokens: list[Token] = []
    open_read: bool = False
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    secret_key: SecretStr | None = None  # signs status-page sessions; generated if unset
    # A worker holding more memory of its own (not shared with the preloaded master) than
    # this is replaced after its request (appliance/web/api/serving.py): what a burst of large
    # requests left behind comes back.
    worker_recycle_mb: int = Field(24, ge=1)
    # A worker that served and then got no request for this long is replaced by a fresh
    # fork if it grew (serving.py): what a burst left in it comes back; 0: never.
    worker_idle_recycle_s: int = Field(30, ge=0)

    @field_validator("listen")
    @classmethod
    def _host_port(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:8041")
        return v

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


# --- Storage --------------------------------------------------------------------------------


class ArchivePolicyItem(_Section):
    """One resolution of an archive policy: ``granularity`` seconds kept for ``timespan``."""

    granularity: int = Field(gt=0)
    timespan: int | None = Field(None, gt=0)
    points: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _span_or_points(self) -> ArchivePolicyItem:
        if (self.timespan is None) == (self.points is None):
            raise ValueError("give exactly one of timespan or points")
        if self.timespan is not None and self.timespan % self.granularity:
            raise ValueError("timespan must be a multiple of granularity")
        return self


class ArchivePolicySettings(_Section):
    definition: list[ArchivePolicyItem] = Field(min_length=1)
    aggregation_methods: list[Literal["mean", "min", "max", "last"]] = ["mean", "min", "max"]
    back_window: int = Field(0, ge=0)


class ArchivePolicyRuleSettings(_Section):
    pattern: str = Field(min_length=1)
    policy: str
    name: str | None = None


class StorageSettings(_Section):
    # rrdcached -w: how long values may wait in its cache before it writes the file. The
    # journal makes them durable at once; reads flush the metric, so this only trades I/O.
    write_delay: int = Field(300, ge=1)
    write_jitter: int = Field(60, ge=0)
    batch_size: int = Field(5000, ge=1)


# --- Pollsters ------------------------------------------------------------------------------


class HostSettings(_Section):
    enabled: bool = True
    interval: Interval = 60
    include_filesystems: list[str] = []  # mountpoint globs; empty: every real filesystem
    exclude_nics: list[str] = ["lo"]
    # Block devices left out, as node_exporter's --collector.diskstats.device-exclude (its
    # default): loop, ram and zram devices, floppies and partitions (their whole disk counts).
    exclude_disks: str = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$"

    @field_validator("exclude_disks")
    @classmethod
    def _regex(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return v


class SensorsSettings(_Section):
    enabled: bool = True
    interval: Interval = 60
    hwmon_root: Path = Path("/sys/class/hwmon")
    thermal_root: Path = Path("/sys/class/thermal")
    include_chips: list[str] = []  # chip-name globs; empty: all
    exclude_chips: list[str] = []
    lm_sensors: bool = True  # use `sensors -j` for chips it knows, when installed
    lm_sensors_command: list[str] = Field(["sensors", "-j"], min_length=1)
    chip_timeout: float = Field(2.0, gt=0)


class LibvirtSettings(_Section):
    enabled: bool = True
    interval: Interval = 60
    uri: str = "qemu:///system"
    # Several hypervisors (e.g. qemu+ssh:// remotes), each one target; when set, replaces uri.
    uris: list[str] = []
    domain_timeout: float = Field(5.0, gt=0)
    lifecycle_events: bool = True
    workers: int = Field(4, ge=1, le=64)  # threads for per-domain reads (fallback path)


class SnmpCredential(_Section):
    """How to talk to an agent: a v2c community or a v3 user with its keys."""

    version: Literal["2c", "3"] = "2c"
    community: SecretStr = SecretStr("public")
    user: str | None = None
    auth_protocol: Literal["none", "MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"] = "none"
    auth_key: SecretStr | None = None
    priv_protocol: Literal["none", "DES", "AES", "AES128", "AES192", "AES256"] = "none"
    priv_key: SecretStr | None = None
    context: str = ""

    @model_validator(mode="after")
    def _v3_needs_user(self) -> SnmpCredential:
        if self.version == "3":
            if not self.user:
                raise ValueError("version 3 needs a user")
            if self.auth_protocol != "none" and not self.auth_key:
                raise ValueError("auth_protocol is set but auth_key is missing")
            if self.priv_protocol != "none" and self.auth_protocol == "none":
                raise ValueError("priv_protocol needs an auth_protocol too")
            if self.priv_protocol != "none" and not self.priv_key:
                raise ValueError("priv_protocol is set but priv_key is missing")
        return self


class SnmpTarget(SnmpCredential):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    host: str
    port: int = Field(161, gt=0, lt=65536)
    groups: list[str] = []  # definition groups; empty: every group that matches the device
    interval: Interval | None = None  # default: pollsters.snmp.interval
    timeout: float = Field(2.0, gt=0)
    retries: int = Field(1, ge=0, le=10)
    max_repetitions: int = Field(25, ge=1, le=255)
    # The device's SNMP engine ID (hex), which v3 traps are authenticated with (RFC 3414:
    # the sender of a trap is the authoritative engine); not needed for v2c or polling.
    engine_id: str | None = Field(None, pattern=r"^(0x)?([0-9A-Fa-f]{2}){5,32}$")


class SnmpDiscoverySettings(_Section):
    """Sweeps that find agents and add them as runtime targets (``snmp-discovery``)."""

    networks: list[IPv4Network] = []  # CIDR, e.g. 192.0.2.0/24; empty: no sweeps
    credentials: list[SnmpCredential] = [SnmpCredential()]  # tried in order per host
    interval: Interval = 3600  # seconds between sweeps
    port: int = Field(161, gt=0, lt=65536)
    timeout: float = Field(1.0, gt=0, le=30)  # per request: a sweep waits on silence
    retries: int = Field(0, ge=0, le=3)
    concurrency: int = Field(8, ge=1, le=256)  # hosts probed at once
    rate: float = Field(20.0, gt=0, le=1000)  # hosts started per second, at most
    max_hosts: int = Field(4096, ge=1, le=65536)  # a sweep refuses larger networks

    @model_validator(mode="after")
    def _bounded(self) -> SnmpDiscoverySettings:
        total = sum(n.num_addresses for n in self.networks)
        if total > self.max_hosts:
            raise ValueError(f"networks hold {total} addresses, over max_hosts {self.max_hosts}")
        return self


class SnmpTrapSettings(_Section):
    """The trap receiver (in the SNMP agent's process; ``appliance snmp traps`` by hand)."""

    enabled: bool = True  # runs when there is at least one target to accept traps from
    # HOST:PORT; default 0.0.0.0:162 when the appliance runs as root, else 0.0.0.0:10162
    # (an unprivileged process cannot bind below 1024; point devices at 10162 or grant
    # CAP_NET_BIND_SERVICE and set 162).
    listen: str | None = None
    keep_days: float = Field(30, gt=0)  # events older than this are deleted

    @field_validator("listen")
    @classmethod
    def _host_port(cls, v: str | None) -> str | None:
        return None if v is None else ApiSettings._host_port(v)

    def address(self) -> tuple[str, int]:
        default_port = 162 if os.geteuid() == 0 else 10162
        host, _, port = (self.listen or f"0.0.0.0:{default_port}").rpartition(":")
        return host.strip("[]"), int(port)


class SnmpSettings(_Section):
    enabled: bool = True
    interval: Interval = 60
    concurrency: int = Field(16, ge=1, le=1024)
    definitions_dir: Path | None = None  # more meter definitions, besides the shipped ones
    mibs_dir: Path | None = None  # site MIB tables written by `appliance snmp compile-mibs`
    traps: SnmpTrapSettings = SnmpTrapSettings()
    discovery: SnmpDiscoverySettings = SnmpDiscoverySettings()
    targets: list[SnmpTarget] = []

    @field_validator("targets")
    @classmethod
    def _unique_names(cls, v: list[SnmpTarget]) -> list[SnmpTarget]:
        names = [t.name for t in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"target names must be unique, repeated: {', '.join(sorted(dup))}")
        return v


class PollsterSettings(_Section):
    host: HostSettings = HostSettings()
    sensors: SensorsSettings = SensorsSettings()
    libvirt: LibvirtSettings = LibvirtSettings()
    snmp: SnmpSettings = SnmpSettings()


class AlarmSettings(_Section):
    enabled: bool = True
    evaluation_interval: Interval = Field(60, ge=1)
    webhook_timeout: float = Field(5.0, gt=0)
    webhook_retries: int = Field(3, ge=0, le=10)


# --- The whole file -------------------------------------------------------------------------


class Settings(_Section):
    version: Literal[1] = CONFIG_VERSION
    data_dir: Path = DEFAULT_DATA_DIR
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    api: ApiSettings = ApiSettings()
    storage: StorageSettings = StorageSettings()
    archive_policies: dict[str, ArchivePolicySettings] = {}
    archive_policy_rules: list[ArchivePolicyRuleSettings] = [
        ArchivePolicyRuleSettings(pattern="*", policy="medium", name="default")
    ]
    pollsters: PollsterSettings = PollsterSettings()
    alarms: AlarmSettings = AlarmSettings()
    coordination: CoordinationSettings = CoordinationSettings()
    publishers: list[Publisher] = []
    receivers: ReceiverSettings = ReceiverSettings()

    @field_validator("data_dir")
    @classmethod
    def _sockets_fit(cls, v: Path) -> Path:
        """Refused here, at the start, rather than by supervisord after it has started
        (its message names neither the key nor the limit)."""
        longest = len(os.fsencode(v.absolute() / "run" / SUPERVISOR_SOCKET))
        if longest > SOCKET_PATH_MAX:
            raise ValueError(
                f"too long for its unix sockets: run/{SUPERVISOR_SOCKET} would be {longest} "
                f"bytes, and with the pid supervisord binds it with, over the 107 a socket "
                f"path holds; choose a data dir of at most "
                f"{len(os.fsencode(v.absolute())) - longest + SOCKET_PATH_MAX} bytes")
        return v

    @model_validator(mode="after")
    def _rules_name_known_policies(self) -> Settings:
        from appliance.storage.policy import BUILTIN_POLICIES

        known = set(BUILTIN_POLICIES) | set(self.archive_policies)
        for rule in self.archive_policy_rules:
            if rule.policy not in known:
                raise ValueError(
                    f"archive_policy_rules: pattern {rule.pattern!r} names unknown policy "
                    f"{rule.policy!r} (known: {', '.join(sorted(known))})"
                )
        return self

    # Paths under the data dir: everything the appliance writes lives there.
    @property
    def index_path(self) -> Path:
        return self.data_dir / "index.sqlite"

    @property
    def rrd_dir(self) -> Path:
        return self.data_dir / "rrd"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "log"

    @property
    def rrdcached_socket(self) -> Path:
        return self.run_dir / RRDCACHED_SOCKET

    @property
    def supervisor_socket(self) -> Path:
        return self.run_dir / SUPERVISOR_SOCKET

    def enabled_sources(self) -> list[str]:
        """Sources switched on (SNMP only when it has targets), each polled by one agent."""
        p = self.pollsters
        on = [name for name in ("host", "sensors", "libvirt") if getattr(p, name).enabled]
        if p.snmp.enabled and p.snmp.targets:
            on.append("snmp")
        return on


def _key_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def parse(data: Any, source: str = "<config>", data_dir: Path | None = None) -> Settings:
    """Validate a parsed YAML document; raise :class:`ConfigError` naming every bad key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [("", "the top level must be a mapping of keys")])
    if data_dir is not None:
        data = {**data, "data_dir": str(data_dir)}
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if p not in ("function-after",))
            msg = err["msg"].removeprefix("Value error, ")
            problems.append((_key_path(loc), msg))
        raise ConfigError(source, problems) from None


def load(path: str | Path | None, data_dir: Path | None = None) -> Settings:
    """Read and validate a config file (``None``: the embedded defaults)."""
    if path is None:
        return parse({}, "<defaults>", data_dir)
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [("", f"cannot read: {exc.strerror}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(path), [("", f"invalid YAML: {where}{problem}")]) from None
    return parse(data, str(path), data_dir)


def effective(settings: Settings) -> dict[str, Any]:
    """The config as a plain mapping with every secret masked, for printing."""
    return settings.model_dump(mode="json")


def matches_any(name: str, patterns: list[str]) -> bool:
    """Shell-glob match used by include/exclude filters in several sections."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


