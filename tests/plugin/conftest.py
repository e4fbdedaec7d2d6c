import pytest

from tests.plugin.helpers import Plugin


@pytest.fixture(scope="session")
def plugin(lab):
    p = Plugin(lab)
    yield p
    p.close()


@pytest.fixture(scope="session")
def enrolled(lab, plugin):
    """vm0 and vm1 prepared (pool key authorized, host key pinned) and registered."""
    for name in ("vm0", "vm1"):
        vm = lab.vm(name)
        plugin.call("prepare", vmuuid=vm["uuid"], username=vm["ssh"]["user"],
                    password=vm["ssh"]["password"], fingerprint=vm["ssh"]["fingerprint"])
        plugin.call("register", vmuuid=vm["uuid"])
    return plugin
