"""The alarm package's pure parts (state rules, composite logic, time constraints, parsing)
and webhook delivery (retries, backoff, give-up) against real local HTTP servers."""

from __future__ import annotations

import datetime as dt
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from appliance import config, supervise
from appliance.alarms.actions import Notifier, redact
from appliance.alarms.model import ALARM, OK, UNKNOWN, Alarm, InvalidAlarm, parse_alarm
from appliance.alarms.states import combine, decide, judge
from appliance.alarms.timeconstraints import within
from tests.conftest import free_port, wait_for


def verdict(values, periods=3, limit=50.0):
    return judge(values, periods, lambda _i, v: v > limit)


@pytest.mark.parametrize(("current", "values", "expected"), [
    (UNKNOWN, [99, 99], None),  # too few points, already insufficient data: nothing to do
    (OK, [99, 99], UNKNOWN),
    (UNKNOWN, [10, 10, 10], OK),
    (OK, [99, 99, 99], ALARM),
    (OK, [99, 10, 99], None),  # a mix keeps a known state
    (ALARM, [10, 99, 10], None),
    (UNKNOWN, [10, 10, 99], ALARM),  # from insufficient data a mix follows the latest point
    (UNKNOWN, [99, 99, 10], OK),
    (ALARM, [1, 2, 99, 99, 99], None),  # only the last evaluation_periods count
])
def test_aodh_state_rules(current, values, expected):
    decision = decide(current, verdict(values), repeat=False)
    assert (decision.state if decision else None) == expected


def test_repeat_reports_remaining_state():
    decision = decide(ALARM, verdict([99, 99, 99]), repeat=True)
    assert decision.state == ALARM and not decision.changed
    assert decision.reason.startswith("Remaining as alarm due to 3 samples outside threshold")


def test_composite_three_valued_logic():
    tree = {"or": [{"type": "x"}, {"and": [{"type": "x"}, {"type": "x"}]}]}
    assert combine(tree, [ALARM, UNKNOWN, UNKNOWN]) == ALARM
    assert combine(tree, [OK, ALARM, OK]) == OK
    assert combine(tree, [OK, ALARM, UNKNOWN]) == UNKNOWN
    assert combine(tree, [OK, OK, UNKNOWN]) == OK  # the "and" is false whatever is unknown
    assert combine(tree, [OK, ALARM, ALARM]) == ALARM


def utc(*args) -> float:
    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()


def test_time_constraints_windows():
    tc = [{"name": "n", "start": "0 23 * * *", "duration": 3 * 3600, "timezone": ""}]
    assert within([], utc(2026, 1, 1, 12))
    assert within(tc, utc(2026, 1, 1, 23, 0))  # exactly at the start
    assert within(tc, utc(2026, 1, 2, 1, 59))  # past midnight, inside three hours
    assert not within(tc, utc(2026, 1, 2, 2, 1))
    assert not within(tc, utc(2026, 1, 1, 22, 59))
    zoned = [{**tc[0], "timezone": "America/New_York"}]  # 23:00 EST is 04:00 UTC
    assert within(zoned, utc(2026, 1, 2, 5))
    assert not within(zoned, utc(2026, 1, 1, 23, 30))


def test_put_keeps_state_unless_given():
    body = {"name": "a", "type": "rrd_moving_average_threshold",
            "rrd_moving_average_threshold_rule": {
                "metric": "6f1b2c1e-58c2-4a4e-9bd5-1a1e2f7f0c11", "window": 300,
                "threshold": 1}}
    first = parse_alarm(body, 100.0)
    first.state = ALARM
    again = parse_alarm(body, 200.0, first)
    assert (again.alarm_id, again.state, again.state_timestamp) == (first.alarm_id, ALARM, 100.0)
    reset = parse_alarm({**body, "state": "ok"}, 300.0, first)
    assert (reset.state, reset.state_timestamp) == (OK, 300.0)
    with pytest.raises(InvalidAlarm, match="exactly one rule"):
        parse_alarm({**body, "composite_rule": {}}, 1.0)


def test_redact_hides_credentials_and_query():
    assert redact("https://user:secret@hook.example:8443/p?token=x") == \
        "https://hook.example:8443/p"


class Flaky:
    """A real server answering 500 to the first ``failures`` posts, then 200."""

    def __init__(self, failures: int):
        self.calls = 0
        flaky = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                flaky.calls += 1
                self.send_response(500 if flaky.calls <= failures else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def alarm_with(url: str) -> Alarm:
    return Alarm("id", "n", "composite", {}, alarm_actions=[url, "log://"])


def test_webhook_retries_with_backoff_then_delivers():
    server = Flaky(failures=2)
    notifier = Notifier(timeout=5, retries=3, backoff=0.01)
    try:
        notifier.notify(alarm_with(server.url), OK, ALARM, "r", {})
        wait_for(lambda: notifier.stats["delivered"] == 1, what="delivery after retries")
        assert server.calls == 3 and notifier.stats["logged"] == 1
    finally:
        notifier.close()
        server.close()


def test_webhook_gives_up_after_bounded_retries():
    server = Flaky(failures=100)
    dead = f"http://127.0.0.1:{free_port()}/nobody"  # connection refused
    notifier = Notifier(timeout=5, retries=2, backoff=0.01)
    try:
        notifier.notify(alarm_with(server.url), OK, ALARM, "r", {})
        notifier.notify(alarm_with(dead), OK, ALARM, "r", {})
        wait_for(lambda: notifier.stats["failed"] == 2, what="both deliveries to give up")
        assert server.calls == 3 and notifier.pending() == 0
    finally:
        notifier.close()
        server.close()


def test_evaluator_is_forked_by_the_workers_program_when_alarms_are_enabled(tmp_path):
    no_sources = {"host": {"enabled": False}, "sensors": {"enabled": False},
                  "libvirt": {"enabled": False}}
    on = config.parse({"data_dir": str(tmp_path), "pollsters": no_sources})
    off = config.parse({"data_dir": str(tmp_path), "pollsters": no_sources,
                        "alarms": {"enabled": False}})
    (program,) = [p for p in supervise.programs(on, None) if p.name == "workers"]
    assert program.argv[-3:] == ["workers", "--data-dir", str(tmp_path)]
    assert supervise.forked(on) == ["api", "alarm-evaluator"]
    assert supervise.forked(off) == ["api"]
