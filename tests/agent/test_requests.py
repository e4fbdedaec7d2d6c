"""The request channel, end to end: AgentDocker in dom0 -> xenstore -> the agent ->
a real Docker Engine, with the allow-list off, partly on and fully on."""

import json
import time

import pytest

from dom0_plugin import agent_transport as T
from dom0_plugin import documents
from dom0_plugin.errors import (DockerError, InvalidArgument, NoSuchContainer,
                                VmUnreachable, XscError)
from xsc_contract import report_schema as S
from xsc_contract.xenstore import XenstoreError
from tests.agent.conftest import DOMID, VM_UUID, wait_for

ALL = S.VERBS


def children(xs, path):
    try:
        return xs.directory(path)
    except XenstoreError as error:
        assert error.code == "ENOENT"
        return []


def ready(dom0, engine, start_agent, allow):
    agent = start_agent(engine.url, allow=allow)
    wait_for(lambda: T.agent_present(dom0, DOMID), 15, what="the agent")
    return agent, T.AgentDocker(dom0, DOMID, VM_UUID, timeout=10)


def state_of(engine, cid):
    return json.loads(engine.docker("inspect", cid))[0]["State"]


def refused(call, *args):
    with pytest.raises(XscError) as caught:
        call(*args)
    assert caught.value.code == T.ERR_AGENT_REFUSED, caught.value
    return caught.value.params


def test_channel_off_by_default_refuses_everything(domain, dom0, clean_engine, start_agent):
    engine = clean_engine
    cid = engine.run("off")
    _, client = ready(dom0, engine, start_agent, allow=())
    assert T.read_report(dom0, DOMID).agent.verbs == ()
    for verb in ("start", "stop", "restart", "pause", "unpause"):
        vm, what, reason = refused(getattr(client, verb), "off")
        assert (vm, what) == (VM_UUID, verb) and "off" in reason
    for call in (client.inspect, client.top, client.logs):
        refused(call, cid)
    assert state_of(engine, cid)["Running"]
    # reading the report needs no request
    wait_for(lambda: [c["Id"] for c in client.ps()] == [cid], 10)
    assert client.resolve("off") == cid and client.resolve(cid[:12]) == cid
    with pytest.raises(NoSuchContainer):
        client.resolve("nothing-here")
    # dom0 cleans up after itself: no request or answer left behind
    lay = S.layout(DOMID)
    assert children(dom0, lay.requests) == [] and children(dom0, lay.answers) == []


def test_allow_list_partly_on(domain, dom0, clean_engine, start_agent):
    engine = clean_engine
    cid = engine.run("partly")
    _, client = ready(dom0, engine, start_agent, allow=("stop", "start", "inspect"))
    assert T.read_report(dom0, DOMID).agent.verbs == ("start", "stop", "inspect")
    client.stop("partly", grace=1)
    assert not state_of(engine, cid)["Running"]
    client.stop("partly", grace=1)          # already stopped: success, as over SSH
    client.start(cid[:10])                  # the 10-character prefix XO/XenCenter send
    assert state_of(engine, cid)["Running"]
    assert client.inspect("partly")["Id"] == cid
    vm, verb, reason = refused(client.pause, "partly")
    assert verb == "pause" and "allow-list" in reason
    assert not state_of(engine, cid)["Paused"]
    refused(client.stats, "partly")


def test_all_verbs(domain, dom0, clean_engine, start_agent):
    engine = clean_engine
    cid = engine.run("chatty", "sh", "-c", "echo hello; echo oops >&2; "
                     "seq 1 5000; sleep 3600")
    _, client = ready(dom0, engine, start_agent, allow=ALL)
    client.pause(cid)
    assert state_of(engine, cid)["Paused"]
    client.pause(cid)                       # already paused: success
    client.unpause(cid)
    client.unpause(cid)                     # already running: success
    assert not state_of(engine, cid)["Paused"]
    started = state_of(engine, cid)["StartedAt"]
    client.restart("chatty", grace=0)
    assert state_of(engine, cid)["StartedAt"] != started
    wait_for(lambda: "5000" in engine.docker("logs", cid), 10)

    top = client.top("chatty")
    assert "PID" in top["Titles"] and top["Processes"]
    xml = documents.render_top(top)
    assert xml.startswith('<?xml version="1.0" ?><docker_top><item><Process>')

    details = client.inspect(cid)
    assert details["Id"] == cid and details["Name"] == "/chatty"
    assert documents.render_inspect(details).startswith(
        '<?xml version="1.0" ?><docker_inspect>')

    logs = client.logs("chatty", tail=3)        # the last 3 lines of both streams
    text = "".join(t for s, t in logs.frames if s == "stdout")
    assert text.endswith("5000\n") and len(logs.frames) <= 3 and not logs.truncated
    assert sum(t.count("\n") for _, t in logs.frames) == 3
    everything = client.logs("chatty", tail="all", max_bytes=2000)
    assert everything.truncated and sum(len(t) for _, t in everything.frames) <= 2000
    # both runs' output (about 50 kB) is more than one answer carries: the newest part,
    # said to be cut
    streams = client.logs("chatty", tail="all")
    assert streams.truncated and 0 < sum(len(t) for _, t in streams.frames) <= \
        S.LOGS_BYTES_MAX
    # (stdout's end: Docker copies stderr apart, so its "oops" may be logged after it)
    assert "".join(t for s, t in streams.frames if s == "stdout").endswith("4999\n5000\n")
    # stdout and stderr kept apart (Docker's log driver copies the two streams apart: the
    # order between them is not kept, the order within each is)
    apart = engine.run("apart", "sh", "-c", "echo out; echo err >&2; echo again; sleep 3600")
    wait_for(lambda: "again" in engine.docker("logs", apart), 10)
    small = client.logs("apart")
    assert not small.truncated

    def stream(name):
        return "".join(t for s, t in small.frames if s == name)
    assert (stream("stdout"), stream("stderr")) == ("out\nagain\n", "err\n")

    with pytest.raises(NoSuchContainer) as caught:
        client.stop("no-such-thing")
    assert caught.value.params == [VM_UUID, "no-such-thing"]
    with pytest.raises(NoSuchContainer):
        client.inspect("0123456789ab")
    with pytest.raises(InvalidArgument):
        client.start("../../etc")           # never reaches the guest
    dead = engine.run("gone")
    engine.docker("rm", "-f", dead)
    with pytest.raises(NoSuchContainer):
        client.top(dead)
    other = engine.run("two", "sh", "-c", "exit 0")
    with pytest.raises(DockerError):        # Docker's own refusal, passed through
        wait_for(lambda: not state_of(engine, other)["Running"], 10)
        client.pause(other)


def request(dom0, request_id, value):
    lay = S.layout(DOMID)
    dom0.write(S.request_path(lay, request_id), value)


def wait_answer(dom0, request_id, timeout=10):
    lay = S.layout(DOMID)
    path = S.answer_path(lay, request_id)

    def answer():
        raw = dom0.read(path)
        if not raw:
            return None
        meta = S.decode_answer_meta(raw)
        chunks = [dom0.read("%s/%d" % (path, i)) for i in range(meta.chunks)]
        return meta, S.decode_answer_result(chunks)
    return wait_for(answer, timeout, what="an answer to " + request_id)


def test_repeated_request_id_is_acted_on_once(domain, dom0, clean_engine, start_agent):
    engine = clean_engine
    cid = engine.run("once")
    agent, _ = ready(dom0, engine, start_agent, allow=ALL)
    lay = S.layout(DOMID)
    rid = "0123456789abcdef0123456789abcdef"
    request(dom0, rid, S.encode_request("restart", "once", {"grace": 0}))
    meta, _ = wait_answer(dom0, rid)
    assert meta.status == "done"
    started = state_of(engine, cid)["StartedAt"]
    # the same id again, while the answer is still there: nothing happens
    request(dom0, rid, S.encode_request("restart", "once", {"grace": 0}))
    time.sleep(1)
    # dom0 collects the answer and removes both, then the same id comes back
    dom0.rm(S.answer_path(lay, rid))
    dom0.rm(S.request_path(lay, rid))
    time.sleep(0.5)
    request(dom0, rid, S.encode_request("restart", "once", {"grace": 0}))
    again, _ = wait_answer(dom0, rid)
    assert again == meta                    # the same answer...
    time.sleep(0.5)
    assert state_of(engine, cid)["StartedAt"] == started    # ...and no second restart
    assert agent.alive()


@pytest.mark.parametrize("value, reason", [
    ('{"verb":"exec","target":"once"}', "unknown verb"),
    ('{"verb":"start","target":"once","args":{"cmd":"sh"}}', "takes no argument"),
    ('{"verb":"start","target":"../x"}', "bad format"),
    ('{"verb":"start","target":"once","extra":1}', "unknown request field"),
    ('{"verb":"stop","target":"once","args":{"grace":100000}}', "out of range"),
    ("not json", "malformed JSON"),
])
def test_bad_requests_are_refused(domain, dom0, clean_engine, start_agent, value, reason):
    engine = clean_engine
    cid = engine.run("once")
    ready(dom0, engine, start_agent, allow=ALL)
    rid = "feedfacefeedface"
    request(dom0, rid, value)
    meta, result = wait_answer(dom0, rid)
    assert (meta.status, meta.code) == ("refused", "bad_request") and result is None
    assert reason in meta.reason
    assert state_of(engine, cid)["Running"]


def test_bad_request_ids_are_dropped(domain, dom0, clean_engine, start_agent):
    ready(dom0, clean_engine, start_agent, allow=ALL)
    lay = S.layout(DOMID)
    dom0.write(lay.requests + "/NOT-AN-ID", S.encode_request("start", "x"))
    wait_for(lambda: children(dom0, lay.requests) == [], 10, what="the bad id removed")
    assert children(dom0, lay.answers) == []


def test_no_agent_or_dead_agent(xsd, domain, dom0, clean_engine, start_agent):
    client = T.AgentDocker(dom0, DOMID, VM_UUID, timeout=1)
    began = time.monotonic()
    with pytest.raises(VmUnreachable) as caught:
        client.start("x")
    assert "no xscontainer guest agent" in caught.value.params[1]
    assert time.monotonic() - began < 0.5
    with pytest.raises(VmUnreachable):
        client.ps()
    assert not T.agent_present(dom0, DOMID)

    agent = start_agent(clean_engine.url, allow=ALL)
    wait_for(lambda: T.agent_present(dom0, DOMID), 15)
    agent.stop(9)     # killed: the report still says running, nobody answers
    began = time.monotonic()
    with pytest.raises(VmUnreachable) as caught:
        client.start("x")
    assert 0.9 < time.monotonic() - began < 3
    assert "did not answer the start request within 1 s" in caught.value.params[1]
    lay = S.layout(DOMID)
    assert children(dom0, lay.requests) == []
    # a restarted agent answers again
    agent.start()
    wait_for(lambda: T.read_report(dom0, DOMID).agent.started, 15)
    with pytest.raises(NoSuchContainer):
        T.AgentDocker(dom0, DOMID, VM_UUID, timeout=10).start("x")


def test_agent_docker_opens_its_own_connection(xsd, domain, dom0, clean_engine, start_agent,
                                               monkeypatch):
    cid = clean_engine.run("own")
    ready(dom0, clean_engine, start_agent, allow=("inspect",))
    monkeypatch.setenv("XENSTORED_PATH", xsd.dom0_socket)
    with T.AgentDocker(None, DOMID, VM_UUID) as client:
        assert client.inspect("own")["Id"] == cid
        assert client.version()["ApiVersion"] and client.api_version >= (1, 24)
        assert client.info()["Containers"] >= 1
    assert client.xs.closed
