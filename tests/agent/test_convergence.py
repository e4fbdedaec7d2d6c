"""The report converges to the engine's truth whatever the order and pace of lifecycle
changes: random back-to-back sequences (one API connection, no pause between calls) on
two containers, then the report must equal Docker's own list. The agent's periodic
resync is 60 s here, so only its event handling can make it converge in time."""

import time

from dom0_plugin.docker_api import DockerClient, unix_connector
from tests.agent.agree import documents_agree
from tests.agent.conftest import DOMID, wait_for
from tests.bursts import Bursts
from dom0_plugin import agent_transport as T

ROUNDS = 30


def reported_states(dom0):
    return dict((c.id, c.state) for c in T.read_report(dom0, DOMID).containers)


def test_random_lifecycle_bursts_converge(domain, dom0, clean_engine, start_agent):
    engine = clean_engine
    start_agent(engine.url)
    wait_for(lambda: T.agent_present(dom0, DOMID), 15, what="the agent")
    ids = [engine.run("burst-%d" % n) for n in range(2)]
    documents_agree(dom0, engine)
    lags = []
    with DockerClient(unix_connector(engine.socket), vm="direct") as client:
        bursts = Bursts(client, ids)
        for _ in range(ROUNDS):
            calls = bursts.play()
            done = time.monotonic()
            wait_for(lambda: reported_states(dom0) == bursts.states, 15,
                     what="the report to show the states after %s" % calls)
            documents_agree(dom0, engine)
            lags.append(time.monotonic() - done)
    lags.sort()
    print("convergence after the last call: median %.2f s, max %.2f s"
          % (lags[len(lags) // 2], lags[-1]))
