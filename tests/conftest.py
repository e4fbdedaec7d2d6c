import os

import pytest

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
