import os

import pytest

from tests import prereq
from tests.labfixture import start_lab, stop_lab


@pytest.fixture(scope="session")
def lab():
    """One lab pool (2 hosts, 2 VMs, monitor on) shared by the tests that only read it
    or put back what they change."""
    extra = os.environ.get("XSCNG_LAB_ARGS", "").split()  # e.g. --no-monitor while debugging
    running = start_lab("--hosts", "2", "--vms", "2", *extra)
    try:
        yield running
    finally:
        stop_lab(running)


@pytest.fixture(scope="session")
def python36():
    """dom0's Python 3.6 (lab/dom0_python.py is the one place that finds it)."""
    from lab import dom0_python
    path = dom0_python.find()
    if path is None:
        prereq.missing("dom0 checks: " + dom0_python.why_missing())
    return path


def pytest_terminal_summary(terminalreporter):
    for reason, count in sorted(prereq.SKIPPED.items()):
        terminalreporter.write_line("did not run (%d tests): %s" % (count, reason),
                                    yellow=True)
