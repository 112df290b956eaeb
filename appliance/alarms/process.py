"""The alarm evaluator as a process of its own under supervisord.

``appliance alarms`` runs rounds every ``alarms.evaluation_interval`` seconds (down to 1 s),
aligned to the interval so that rounds do not drift, and never two at once: a round that
overruns makes the next one start at the following tick. SIGTERM ends it between rounds.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

from appliance import coordination
from appliance.alarms.actions import Notifier
from appliance.alarms.evaluator import Evaluator
from appliance.config import Settings
from appliance.store import Store

log = logging.getLogger(__name__)

#: How long a stopping evaluator lets queued webhooks go out (supervisord waits 8 s).
SHUTDOWN_GRACE = 3.0


def run(settings: Settings, stop: threading.Event) -> None:
    """Evaluate until ``stop`` is set."""
    cfg = settings.alarms
    store = Store(settings, seed=False)
    notifier = Notifier(cfg.webhook_timeout, cfg.webhook_retries)
    share = coordination.share(settings, "alarms")
    evaluator = Evaluator(store, notifier, owned=share.mine)
    interval = cfg.evaluation_interval
    log.info("alarm evaluator: every %ss", interval)
    try:
        while not stop.is_set():
            try:
                report = evaluator.run_round()
            except Exception:  # the index or rrdcached may be restarting: try next tick
                log.exception("evaluation round failed")
            else:
                level = logging.INFO if report.transitions or report.errors else logging.DEBUG
                log.log(level, "round: %d alarms, %d evaluated, %d transitions, %d errors, "
                        "%d reads in %.3fs", report.alarms, report.evaluated,
                        report.transitions, report.errors, report.reads, report.seconds)
            stop.wait(interval - time.time() % interval)
    finally:
        share.close()
        if not notifier.drain(SHUTDOWN_GRACE):
            log.warning("stopping with %d webhook notifications undelivered", notifier.pending())
        notifier.close()
        store.close()


def main(settings: Settings) -> None:
    """The ``appliance alarms`` command: evaluate until SIGTERM or SIGINT."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: stop.set())
    try:
        run(settings, stop)
    finally:
        logging.shutdown()
        # A webhook in flight to a hung target must not hold the stop up to its timeout.
        os._exit(0)
