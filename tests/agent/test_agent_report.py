"""The agent's report, end to end: a real Docker Engine, the agent process on the lab's
xenstored (guest socket), dom0 reading it with agent_transport and rendering the same
documents as a direct Docker API client would."""

import os
import signal
import time

import pytest

from dom0_plugin import agent_transport as T
from dom0_plugin import documents
from dom0_plugin.docker_api import DockerClient, unix_connector
from dom0_plugin.errors import DockerUnavailable, VmUnreachable
from xsc_contract import report_schema as S
from xsc_contract.xenstore import XenstoreError
from tests.agent.agree import documents_agree
from tests.agent.conftest import DOMID, VM_UUID, report_state, wait_for


def container(report, cid):
    found = [c for c in report.containers if c.id == cid]
    return found[0] if found else None


def test_report_follows_containers_and_renders_like_docker(domain, dom0, clean_engine,
                                                           start_agent):
    engine = clean_engine
    start_agent(engine.url)
    wait_for(lambda: T.agent_present(dom0, DOMID), 15, what="the agent")
    report = T.read_report(dom0, DOMID)
    assert report.agent.schema == S.SCHEMA_VERSION and report.agent.verbs == ()
    assert report.state.status == "running" and report.state.docker == "up"

    cid = engine.run("web-1", options=["--label", "com.example/tier=front end & co"])
    xml = documents_agree(dom0, engine)
    assert "<names>web-1</names><container>%s</container>" % cid[:10] in xml
    assert "<status>Up</status>" in xml
    assert "front end &amp; co" in xml and "&amp;amp;" not in xml

    engine.docker("pause", cid)
    assert "<status>Up (Paused)</status>" in documents_agree(dom0, engine)
    engine.docker("unpause", cid)
    engine.docker("kill", cid)
    assert "<status>Exited (137)</status>" in documents_agree(dom0, engine)
    other = engine.run("job", "sh", "-c", "exit 3")
    wait_for(lambda: "Exited (3)" in engine.docker("ps", "-a"), 15, what="job to exit")
    assert "<status>Exited (3)</status>" in documents_agree(dom0, engine)

    # info and version: the fields XenCenter shows are Docker's own
    with DockerClient(unix_connector(engine.socket), vm="direct") as client:
        info, version = client.info(), client.version()
    _, rinfo, rversion = T.to_docker_shapes(T.read_report(dom0, DOMID))
    for key in ("ServerVersion", "Driver", "IndexServerAddress", "IPv4Forwarding", "ID",
                "Images", "NCPU"):
        assert rinfo[key] == info[key], key
    assert rinfo["Containers"] == 2 and rinfo["ContainersStopped"] == 2
    for key in ("Version", "ApiVersion", "GitCommit", "Os", "Arch"):
        assert rversion[key] == version[key], key
    assert documents.render_version(rversion).startswith('<?xml version="1.0" ?>'
                                                         '<docker_version>')

    engine.docker("rm", "-f", cid, other)
    assert documents_agree(dom0, engine) == '<?xml version="1.0" ?><docker_ps/>'
    report = T.read_report(dom0, DOMID)
    assert report.containers == () and report.state.count == 0
    # the removed container's node and its page are gone from xenstore
    assert dom0.directory(S.layout(DOMID).containers) == []


def test_writes_only_on_change(domain, dom0, clean_engine, start_agent):
    engine = clean_engine
    start_agent(engine.url)
    first = wait_for(lambda: report_state(dom0), 15, what="a report")
    time.sleep(2.5)     # nothing changes: nothing is written (heartbeat is 60 s)
    assert report_state(dom0).seq == first.seq
    # exec events do not change what the report shows: still nothing written
    cid = engine.run("quiet")
    wait_for(lambda: (container(T.read_report(dom0, DOMID), cid) or
                      container(T.read_report(dom0, DOMID), cid)).state == "running", 15)
    time.sleep(1.5)
    seq = report_state(dom0).seq
    engine.docker("exec", cid, "true")
    engine.docker("top", cid)
    time.sleep(2)
    assert report_state(dom0).seq == seq


def test_burst_of_changes_is_batched(domain, dom0, clean_engine, start_agent):
    engine = clean_engine
    start_agent(engine.url)
    cid = engine.run("flappy")
    wait_for(lambda: T.read_report(dom0, DOMID).state.count == 1, 15)
    time.sleep(1.2)
    start = report_state(dom0)
    began = time.monotonic()
    for _ in range(40):     # 80 events over a few seconds
        engine.docker("pause", cid)
        time.sleep(0.02)
        engine.docker("unpause", cid)
        time.sleep(0.02)
    elapsed = time.monotonic() - began
    wait_for(lambda: container(T.read_report(dom0, DOMID), cid).state == "running", 10)
    time.sleep(1.5)
    writes = report_state(dom0).seq - start.seq
    # far fewer batches than events: a burst of publish_burst (3) at once, then at most
    # one a second, and the settle re-read after the last event
    assert writes <= elapsed + 3 + 1, (writes, elapsed)
    print("%d events in %.1f s: %d writes" % (80, elapsed, writes))


def test_agent_killed_and_restarted(domain, dom0, clean_engine, start_agent):
    engine = clean_engine
    keep = engine.run("keep")
    gone = engine.run("gone")
    agent = start_agent(engine.url)
    wait_for(lambda: len(T.read_report(dom0, DOMID).containers) == 2, 15)
    before = T.read_report(dom0, DOMID)
    agent.stop(signal.SIGKILL)
    # while the agent is dead: one container goes, one comes
    engine.docker("rm", "-f", gone)
    new = engine.run("new")
    time.sleep(1)
    assert container(T.read_report(dom0, DOMID), gone) is not None   # stale, as left
    time.sleep(1)   # the new agent's start time (seconds) differs
    agent.start()
    after = wait_for(lambda: (lambda r: r if container(r, new) else None)(
        T.read_report(dom0, DOMID)), 15, what="the restarted agent's report")
    assert container(after, gone) is None and container(after, keep) is not None
    assert after.state.seq > before.state.seq
    assert after.agent.started > before.agent.started
    documents_agree(dom0, engine)


def test_clean_stop_marks_the_report_stopped(domain, dom0, clean_engine, start_agent):
    agent = start_agent(clean_engine.url)
    wait_for(lambda: report_state(dom0), 15)
    assert agent.stop(signal.SIGTERM) == 0
    state = report_state(dom0)
    assert state.status == "stopped"
    client = T.AgentDocker(dom0, DOMID, VM_UUID, timeout=2)
    with pytest.raises(VmUnreachable) as caught:
        client.ps()
    assert "stopped" in caught.value.params[1]
    began = time.monotonic()
    with pytest.raises(VmUnreachable):
        client.start("anything")    # no wait for an agent that said it stopped
    assert time.monotonic() - began < 1


def test_engine_restarted(domain, dom0, own_engine, start_agent):
    engine = own_engine
    engine.start()
    cid = engine.run("survivor", options=["--restart", "always"])
    start_agent(engine.url)
    wait_for(lambda: container(T.read_report(dom0, DOMID), cid), 15)
    engine.stop()
    down = wait_for(lambda: (lambda s: s if s.docker == "down" else None)(
        report_state(dom0)), 15, what="docker down in the report")
    assert down.error
    with pytest.raises(DockerUnavailable):
        T.AgentDocker(dom0, DOMID, VM_UUID).ps()
    engine.start()
    report = wait_for(lambda: (lambda r: r if r.state.docker == "up" and
                               container(r, cid) and container(r, cid).state == "running"
                               else None)(T.read_report(dom0, DOMID)), 30,
                      what="the report after the engine came back")
    assert report.state.error == ""
    other = engine.run("after-restart")
    wait_for(lambda: container(T.read_report(dom0, DOMID), other), 15)


def test_engine_absent_at_boot(domain, dom0, own_engine, start_agent):
    engine = own_engine
    agent = start_agent(engine.url)          # no engine yet
    state = wait_for(lambda: report_state(dom0), 15, what="a report without Docker")
    assert state.docker == "down" and "not running" in state.error
    assert T.agent_present(dom0, DOMID)
    engine.start()
    cid = engine.run("late")
    wait_for(lambda: container(T.read_report(dom0, DOMID), cid), 30,
             what="the container of the late engine")
    assert agent.alive()


def fill_quota(guest, leave):
    """Create nodes as the guest until its quota is full, then free ``leave`` of them."""
    made = 0
    while True:
        try:
            guest.write("data/junk/n%d" % made, "x")
        except XenstoreError as error:
            assert error.code == "EQUOTA"
            break
        made += 1
    for index in range(leave):
        guest.rm("data/junk/n%d" % (made - 1 - index))
    return made


def test_quota_reached_degrades_cleanly(xsd, domain, dom0, clean_engine, start_agent):
    engine = clean_engine
    ids = [engine.run("q%d" % i) for i in range(6)]
    with xsd.client(DOMID) as guest:
        # room for the report's fixed nodes (root, agent, version, info, containers,
        # state), a page and 2 of the 6 containers
        fill_quota(guest, leave=9)
        agent = start_agent(engine.url, resync=3)
        state = wait_for(lambda: report_state(dom0), 15, what="a degraded report")
        assert state.truncated and state.count < 6 and state.total == 6
        assert "quota" in state.error
        report = T.read_report(dom0, DOMID)          # still a valid, smaller report
        assert len(report.containers) == state.count
        assert agent.alive()
        # the quota frees up: the next retry publishes everything
        guest.rm("data/junk")
    report = wait_for(lambda: (lambda r: r if r.state.count == 6 else None)(
        T.read_report(dom0, DOMID)), 20, what="the full report after the quota freed")
    assert not report.state.truncated and report.state.error == ""
    assert sorted(c.id for c in report.containers) == sorted(ids)
    assert "quota" in agent.log_text()


def test_quota_full_from_the_start(xsd, domain, dom0, clean_engine, start_agent):
    with xsd.client(DOMID) as guest:
        fill_quota(guest, leave=0)
        agent = start_agent(clean_engine.url, resync=2)
        wait_for(lambda: "quota" in agent.log_text(), 15, what="the agent to see the quota")
        time.sleep(1)
        assert agent.alive() and not T.agent_present(dom0, DOMID)
        guest.rm("data/junk")
    wait_for(lambda: T.agent_present(dom0, DOMID), 20, what="the report once room is made")


def test_idle_agent_is_cheap(domain, dom0, clean_engine, start_agent):
    for index in range(3):
        clean_engine.run("idle%d" % index)
    agent = start_agent(clean_engine.url)
    wait_for(lambda: T.read_report(dom0, DOMID).state.count == 3, 15)
    time.sleep(2)
    pid = agent.proc.pid
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu_seconds():
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / float(ticks)

    before, began = cpu_seconds(), time.monotonic()
    time.sleep(10)
    used = (cpu_seconds() - before) / (time.monotonic() - began)
    with open("/proc/%d/status" % pid) as f:
        rss_kb = int([line for line in f if line.startswith("VmRSS:")][0].split()[1])
    print("idle agent: %.3f%% of a core, RSS %.1f MB" % (used * 100, rss_kb / 1024.0))
    assert used < 0.005, "idle agent used %.2f%% of a core" % (used * 100)
    assert rss_kb < 40 * 1024
