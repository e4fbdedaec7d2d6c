"""A private Docker Engine for the dom0 library tests.

It listens on its own Unix socket with its own data, exec and pid paths, makes no bridge
and touches no iptables rules; containers run with ``--network none``. The image is a
``docker import`` of Debian's static busybox. At the end the engine is stopped by pid,
anything left under its folder is killed (by pid) and unmounted, and the folder removed.
"""

import pytest

from tests import prereq
from tests.engine import ENGINES, IMAGE, Engine, missing_prerequisite  # noqa: F401


@pytest.fixture(scope="session", params=ENGINES)
def engine(request):
    reason = missing_prerequisite()
    if reason:
        prereq.missing(reason)
    eng = Engine(prefix="xscd-", suite=request.param)
    try:
        yield eng.start()
    finally:
        eng.destroy()
