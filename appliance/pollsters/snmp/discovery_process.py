"""Discovery as a command and as the ``snmp-discovery`` program: sweep, then record.

The sweep (:mod:`.discovery`) only reads; recording what answered as runtime targets is
this module's job, through the index (:mod:`.runtime`). The SNMP agent picks new targets
up at its next cycle.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading

from appliance.config import Settings, SnmpDiscoverySettings
from appliance.pollsters.snmp.definitions import load_groups
from appliance.pollsters.snmp.discovery import Sweep, sweep
from appliance.pollsters.snmp.mibnames import MibNames

log = logging.getLogger(__name__)


def sweep_once(settings: Settings, cfg: SnmpDiscoverySettings) -> Sweep:
    snmp = settings.pollsters.snmp
    groups = load_groups(snmp.definitions_dir, MibNames.load(snmp.mibs_dir))
    return asyncio.run(sweep(cfg, cfg.networks, groups))


def record(settings: Settings, result: Sweep) -> list[str]:
    """Add what answered as runtime targets in the data dir's index."""
    from appliance.index import Index
    from appliance.pollsters.snmp.runtime import record_found

    settings.index_path.parent.mkdir(parents=True, exist_ok=True)
    index = Index(settings.index_path)
    try:
        return record_found(index, result.found, settings.pollsters.snmp.targets)
    finally:
        index.close()


def serve(settings: Settings, cfg: SnmpDiscoverySettings) -> None:
    """Sweep every ``cfg.interval`` seconds until SIGTERM; a failed sweep waits for the next."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: stop.set())
    while not stop.is_set():
        try:
            result = sweep_once(settings, cfg)
            added = record(settings, result)
        except Exception:  # the index may be restarting: try at the next interval
            log.exception("snmp discovery sweep failed")
        else:
            log.info("snmp discovery: %d answered of %d probed in %.1fs, %d new targets%s",
                     len(result.found), result.probed, result.seconds, len(added),
                     f" ({', '.join(added)})" if added else "")
        stop.wait(cfg.interval)
