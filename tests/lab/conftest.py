import pytest

from lab.xapi import testing


@pytest.fixture(scope="module")
def root(sim):
    """A pool-admin session on the module's simulator (each module defines `sim`)."""
    return testing.login(sim)
