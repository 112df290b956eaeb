"""The run fails when a test is skipped (tests/noskip.py), and passes when none is."""

from __future__ import annotations

import pytest


def test_a_skipped_test_fails_the_run(pytester: pytest.Pytester):
    pytester.makeconftest("pytest_plugins = ['tests.noskip']")
    pytester.makepyfile(
        "import pytest\n"
        "def test_runs():\n    assert True\n"
        "def test_missing_tool():\n    pytest.skip('frobnicator not installed')\n"
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*skipped tests fail the run*",
                                 "*test_missing_tool*frobnicator not installed*"])


def test_a_run_without_skips_passes(pytester: pytest.Pytester):
    pytester.makeconftest("pytest_plugins = ['tests.noskip']")
    pytester.makepyfile("def test_runs():\n    assert True\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
