"""The per-call time limit that keeps one hung libvirt domain (or hwmon chip) from stalling
the rest. A call blocked on an Event stands in for a read stuck in C: like it, it cannot be
interrupted and returns only when released.
"""

from __future__ import annotations

import threading
import time

from appliance.pollsters.deadline import DeadlineRunner


def test_a_hung_call_is_given_up_while_the_others_return():
    release = threading.Event()
    runner = DeadlineRunner(workers=2, name="t")
    calls = {"hung": release.wait, **{f"ok{i}": (lambda i=i: i) for i in range(10)}}
    out = runner.run(calls, timeout=0.2, deadline=time.monotonic() + 30)
    assert {k: o.value for k, o in out.items() if o.ok} == {f"ok{i}": i for i in range(10)}
    assert out["hung"].error == "no answer within 0.2s"
    assert runner.stuck == {"hung"}

    # While it is still stuck, later runs skip it at once and still have free workers.
    again = runner.run(calls, timeout=0.2, deadline=time.monotonic() + 30)
    assert again["hung"].error == "previous call still running"
    assert all(again[f"ok{i}"].value == i for i in range(10))

    release.set()
    deadline = time.monotonic() + 10
    while runner.stuck and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runner.run({"hung": lambda: "back"}, 1, time.monotonic() + 10)["hung"].value == "back"


def test_calls_still_queued_at_the_deadline_are_reported_not_waited_for():
    release = threading.Event()
    runner = DeadlineRunner(workers=1, name="t")
    try:
        out = runner.run({"slow": release.wait, "queued": lambda: 1},
                         timeout=60, deadline=time.monotonic() + 0.2)
    finally:
        release.set()
    assert out["queued"].error == "not started before the poll deadline"
    assert out["slow"].error == "no answer by deadline"


def test_an_exception_is_an_outcome_not_a_crash():
    def boom() -> None:
        raise ValueError("bad chip")

    out = DeadlineRunner(workers=1, name="t").run({"x": boom}, 1, time.monotonic() + 10)["x"]
    assert isinstance(out.exc, ValueError) and out.error == "ValueError: bad chip"
