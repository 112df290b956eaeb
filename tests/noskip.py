"""A pytest plugin: a skipped test fails the run (a missing tool is an install bug).

The Makefile installs every tool the tests use, so a skip means the machine is not what CI
and ``make test`` build; the run then ends with a failing exit status and says which tests
were skipped and why. ``-ra`` still lists them in the short summary.
"""

from __future__ import annotations

import pytest

#: "nodeid: reason" of every skipped test of this run.
SKIPPED = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[SKIPPED] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        item.config.stash[SKIPPED].append(f"{item.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.config.stash[SKIPPED] and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    skipped = config.stash[SKIPPED]
    if skipped:
        terminalreporter.section("skipped tests fail the run", sep="=", red=True)
        for line in skipped:
            terminalreporter.line(line)
