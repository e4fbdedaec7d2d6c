"""docker_events.Convergence: a container is read again until the list agrees with its
last event, then once more; a read that raced a newer event does not count."""
from xsc_contract import docker_events as E

CID = "c" * 64
OTHER = "d" * 64


def running(state="running"):
    return {"Id": CID, "State": state}


def test_actions_of_every_api_version():
    assert E.container_action({"status": "die", "id": CID, "from": "x"}) == (CID, "die")
    # API 1.52: no status/id/from
    assert E.container_action({"Type": "container", "Action": "health_status: healthy",
                               "Actor": {"ID": CID}}) == (CID, "health_status")
    assert E.container_action({"Type": "container", "Action": "die",
                               "Actor": {"ID": "../etc"}}) == (None, "die")
    assert E.container_action({"Type": "image", "Action": "delete"}) == (None, "delete")
    assert E.container_action(["not", "a", "dict"]) == (None, "")


def test_agreement_per_expectation():
    assert E.agrees(E.expectation("pause"), running("paused"))
    assert not E.agrees(E.expectation("pause"), running())
    assert E.agrees(E.expectation("die"), running("exited"))
    assert E.agrees(E.expectation("die"), running("restarting"))
    assert not E.agrees(E.expectation("die"), running())
    assert not E.agrees(E.expectation("start"), None)
    assert E.agrees(E.expectation("destroy"), None)
    assert not E.agrees(E.expectation("destroy"), running("exited"))
    assert E.agrees(E.expectation("kill"), running()) and E.expectation("kill") is None


def test_lagging_list_is_read_again_until_it_agrees_then_once_more():
    c = E.Convergence(delays=(0.1, 0.2), settle=0.5)
    c.event(CID, "pause")
    c.observed({CID}, {CID: running()}, 10.0)           # the list still says running
    assert c.next_due() == 10.1 and c.due(10.05) == set() and c.due(10.1) == {CID}
    c.observed({CID}, {CID: running()}, 10.1)
    assert c.due(10.3) == {CID}
    c.observed({CID}, {CID: running("paused")}, 10.3)   # caught up: one settle read
    assert c.due(10.8) == {CID}
    c.observed({CID}, {CID: running("paused")}, 10.8)
    assert len(c) == 0 and c.next_due() is None


def test_gives_up_after_the_last_delay():
    c = E.Convergence(delays=(0.1,), settle=0.5)
    c.event(CID, "start")
    c.observed({CID}, {}, 1.0)
    assert c.due(1.1) == {CID}
    c.observed({CID}, {}, 1.1)
    assert len(c) == 0 and c.gave_up == 1


def test_only_the_last_expectation_counts_and_kill_keeps_it():
    c = E.Convergence(delays=(0.1,), settle=0.5)
    c.event(CID, "pause")
    c.event(CID, "unpause")
    c.event(CID, "kill")            # no expectation of its own: still "running"
    c.observed({CID}, {CID: running("paused")}, 1.0)
    assert c.due(1.1) == {CID}
    c.event(CID, "die")
    c.observed({CID}, {CID: running()}, 1.2)
    assert c.next_due() == 1.3


def test_a_read_that_raced_a_newer_event_is_ignored():
    c = E.Convergence(delays=(0.1,), settle=0.5)
    c.event(CID, "pause")
    marks = c.marks({CID, OTHER})
    assert marks == {CID: 1}
    c.event(CID, "unpause")         # arrives while the read is under way
    c.observed({CID}, {CID: running("paused")}, 1.0, marks)
    assert c.next_due() is None and len(c) == 1     # still to be read (it is dirty)
    c.observed({CID}, {CID: running()}, 1.1, c.marks({CID}))
    assert c.next_due() == 1.6


def test_bounded():
    c = E.Convergence(limit=2)
    for n in range(5):
        c.event("%064x" % n, "start")
    assert len(c) == 2
