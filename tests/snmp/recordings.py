"""Synthetic device recordings in snmpsim's ``.snmprec`` format (``OID|TAG|VALUE``).

Written here rather than copied from real devices so that each recording has exactly the
shape a test needs: 64-bit counters or only 32-bit ones, LM-SENSORS rows, a table larger
than one PDU. Tags: 2 Integer32, 4 OctetString, 4x hex string, 6 OID, 65 Counter32,
66 Gauge32, 67 TimeTicks, 70 Counter64; ``TAG:writecache`` lets a test SET the value.
"""

from __future__ import annotations

IF = "1.3.6.1.2.1.2.2.1"
IFX = "1.3.6.1.2.1.31.1.1.1"
LM = "1.3.6.1.4.1.2021.13.16"
NET_SNMP_LINUX = "1.3.6.1.4.1.8072.3.2.10"

Record = tuple[str, str, str]


def system(descr: str, object_id: str = NET_SNMP_LINUX, uptime: int = 123456) -> list[Record]:
    return [
        ("1.3.6.1.2.1.1.1.0", "4", descr),
        ("1.3.6.1.2.1.1.2.0", "6", object_id),
        ("1.3.6.1.2.1.1.3.0", "67:writecache", f"value={uptime}"),
        ("1.3.6.1.2.1.1.5.0", "4", descr.split()[0].lower()),
        ("1.3.6.1.2.1.1.6.0", "4", "rack 1"),
    ]


def interfaces(
    count: int, hc: bool = True, octets: int = 1000, writable: bool = False
) -> list[Record]:
    """ifTable rows 1..count; with ``hc`` also ifXTable with 64-bit counters.

    ``writable`` makes ifInOctets (32-bit) settable, to play wraps and restarts.
    """
    out: list[Record] = []
    counter32 = "65:writecache" if writable else "65"
    for i in range(1, count + 1):
        in32 = f"value={octets * i}" if writable else str(octets * i)
        out += [
            (f"{IF}.1.{i}", "2", str(i)),
            (f"{IF}.2.{i}", "4", f"eth{i - 1}"),
            (f"{IF}.3.{i}", "2", "6"),
            (f"{IF}.5.{i}", "66", "1000000000" if hc else "100000000"),
            (f"{IF}.6.{i}", "4x", f"5254000000{i:02x}"),
            (f"{IF}.7.{i}", "2", "1"),
            (f"{IF}.8.{i}", "2", "1" if i % 5 else "2"),
            (f"{IF}.10.{i}", counter32, in32),
            (f"{IF}.11.{i}", "65", str(10 * i)),
            (f"{IF}.12.{i}", "65", str(i)),
            (f"{IF}.13.{i}", "65", "0"),
            (f"{IF}.14.{i}", "65", "0"),
            (f"{IF}.16.{i}", "65", str(2 * octets * i)),
            (f"{IF}.17.{i}", "65", str(20 * i)),
            (f"{IF}.18.{i}", "65", str(i)),
            (f"{IF}.19.{i}", "65", "0"),
            (f"{IF}.20.{i}", "65", "0"),
        ]
        if hc:
            big = 5_000_000_000_000
            out += [
                (f"{IFX}.1.{i}", "4", f"eth{i - 1}"),
                (f"{IFX}.6.{i}", "70", str(big + octets * i)),
                (f"{IFX}.7.{i}", "70", str(10 * i)),
                (f"{IFX}.10.{i}", "70", str(big + 2 * octets * i)),
                (f"{IFX}.11.{i}", "70", str(20 * i)),
                (f"{IFX}.15.{i}", "66", "1000"),
                (f"{IFX}.18.{i}", "4", f"uplink {i}"),
            ]
    return out


def sensors() -> list[Record]:
    """LM-SENSORS-MIB rows: two temperatures, a fan, a voltage, power and current."""
    rows = {
        "2.1": [("Core 0", 45000), ("Core 1", 47500)],  # lmTempSensorsTable, mC
        "3.1": [("fan1", 1200)],  # lmFanSensorsTable, RPM
        "4.1": [("in0", 1200)],  # lmVoltSensorsTable, mV
        "5.1": [("power1", 95500), ("curr1", 2300)],  # lmMiscSensorsTable, thousandths
    }
    out: list[Record] = []
    for table, entries in rows.items():
        for i, (label, value) in enumerate(entries, start=1):
            out += [
                (f"{LM}.{table}.1.{i}", "2", str(i)),
                (f"{LM}.{table}.2.{i}", "4", label),
                (f"{LM}.{table}.3.{i}", "66", str(value)),
            ]
    return out


def render(records: list[Record]) -> str:
    """snmprec text, in OID order (snmpsim answers GETNEXT from the file's order)."""
    ordered = sorted(records, key=lambda r: tuple(int(p) for p in r[0].split(".")))
    return "".join(f"{oid}|{tag}|{value}\n" for oid, tag, value in ordered)
