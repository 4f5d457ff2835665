"""pytest plugin of the differential mode (loaded with -p interop_diff_plugin).

It names the running test in the file the recorder reads when it accepts a
connection, and writes every test's outcome, so that the comparison can say
where a test passed against one broker and not the other.
"""

import json
import os
import pathlib

import pytest

CURRENT_TEST = pathlib.Path(os.environ["INTEROP_DIFF_CURRENT_TEST"])
OUTCOMES = pathlib.Path(os.environ["INTEROP_DIFF_OUTCOMES"])

outcomes: dict[str, str] = {}


def announce(test: str):
    # Replaced atomically, so the recorder never reads a half-written name.
    pending = CURRENT_TEST.with_name(CURRENT_TEST.name + ".pending")
    pending.write_text(test)
    pending.replace(CURRENT_TEST)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    # Spans the test's setup, call and teardown: fixtures' connections count as the test's.
    announce(item.nodeid)
    yield
    CURRENT_TEST.unlink()  # no test is running


def pytest_runtest_logreport(report):
    # One report per phase (setup, call, teardown); the first that did not pass decides.
    if report.failed:
        outcome = "failed" if report.when == "call" else f"error in {report.when}"
    else:
        outcome = report.outcome  # passed or skipped
    if outcomes.get(report.nodeid, "passed") == "passed":
        outcomes[report.nodeid] = outcome


def pytest_sessionfinish(session):
    OUTCOMES.write_text(json.dumps(outcomes, indent=1))
