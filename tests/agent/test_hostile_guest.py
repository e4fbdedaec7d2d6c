"""Hostile reports written straight into xenstore with the guest's identity (its own
socket, its own quota): dom0's read_report and AgentDocker must give a clear error,
never crash, hang or read without bound."""

import threading
import time

import pytest

from dom0_plugin import agent_transport as T
from dom0_plugin.errors import XscError
from xsc_contract import report_schema as S
from xsc_contract.xenstore import XenstoreError
from tests.agent.conftest import DOMID, VM_UUID

REL = S.layout()
ID_A = "a" * 64
ID_B = "0123456789abcdef" * 4


def summary(cid, name):
    return {"Id": cid, "Names": ["/" + name], "Image": "busybox", "Command": "sleep 1",
            "Created": 1700000000, "State": "running", "Status": "Up 1 second",
            "Ports": [], "Labels": {"a": "b"}}


def write_valid(guest, ids=(ID_A, ID_B)):
    guest.write(REL.agent, S.encode_agent("0.1.0", 1700000000, ("start",)))
    guest.write(REL.version, S.encode_version({"Version": "20.10", "ApiVersion": "1.41"}))
    guest.write(REL.info, S.encode_info({"ServerVersion": "20.10", "Containers": 2}))
    for index, cid in enumerate(ids):
        guest.write(S.container_path(REL, 0, cid), S.encode_container(
            summary(cid, "c%d" % index))[1])
    guest.write(REL.state, S.encode_state(1, 1700000000, "running", "up", "", len(ids),
                                          len(ids), False, 60))


@pytest.fixture
def guest(xsd, domain):
    with xsd.client(DOMID) as xs:
        write_valid(xs)
        yield xs


def report_error(dom0):
    began = time.monotonic()
    with pytest.raises(S.ReportError) as caught:
        T.read_report(dom0, DOMID)
    assert time.monotonic() - began < 2
    assert caught.value.reason
    return str(caught.value)


def test_the_valid_baseline_reads(guest, dom0):
    report = T.read_report(dom0, DOMID)
    # same Created: the order between the two is not part of the contract
    assert sorted(c.id for c in report.containers) == sorted([ID_A, ID_B])
    containers, info, version = T.to_docker_shapes(report)
    assert {c["Names"][0] for c in containers} == {"/c0", "/c1"}
    assert info["Containers"] == 2 and version["ApiVersion"] == "1.41"


STATE_OK = S.encode_state(1, 1700000000, "running", "up", "", 2, 2, False, 60)


@pytest.mark.parametrize("path, value, reason", [
    (REL.agent, "{}", "missing field schema"),
    (REL.agent, '{"schema":2,"agent":"9","started":0,"verbs":[]}', "not supported"),
    (REL.agent, '{"schema":1,"agent":"0.1","started":0,"verbs":["exec"]}', "verb must be"),
    (REL.agent, '{"schema":1,"agent":"0.1","started":0,"verbs":"start"}', "verbs must be"),
    (REL.state, STATE_OK.replace('"seq":1', '"seq":"1"'), "seq must be an integer"),
    (REL.state, STATE_OK.replace('"seq":1', '"seq":-1'), "seq out of range"),
    (REL.state, STATE_OK.replace('"seq":1', '"seq":1e400'), "seq must be an integer"),
    (REL.state, STATE_OK.replace('"seq":1', '"seq":NaN'), "malformed JSON"),
    (REL.state, STATE_OK.replace('"count":2', '"count":5'), "disagree"),
    (REL.state, STATE_OK.replace('"count":2', '"count":1').replace('"total":2', '"total":1'),
     "1 containers, 2 are listed"),
    (REL.state, STATE_OK.replace('"status":"running"', '"status":"zombie"'), "status must"),
    (REL.state, STATE_OK.replace('"error":""', '"error":"%s"' % ("x" * 1900)), "longer than"),
    (REL.state, STATE_OK.replace('"error":""', '"error":"\\u0007"'), "control characters"),
    (REL.state, STATE_OK[:-1] + ',"seq":2}', "duplicate key"),
    (REL.state, "{" * 1000, "nested deeper"),
    (REL.state, "[" * 7 + "]" * 7, "nested deeper"),
    (REL.state, "{not json", "malformed JSON"),
    (REL.state, b"\xff\xfe\x00junk", "not ASCII"),
    (REL.state, "", "empty value"),
    (REL.state, "[1,2,3]", "must be a JSON object"),
    (REL.version, '{"Version":5}', "Version must be a string"),
    (REL.info, '{"NCPU":true}', "NCPU must be an integer"),
    (REL.info, '{"IPv4Forwarding":"yes"}', "must be true or false"),
    (S.container_path(REL, 0, ID_A), '{"Names":"c0","Created":1,"State":"running"}',
     "Names must be a list"),
    (S.container_path(REL, 0, ID_A), '{"Names":["/a b"],"Created":1,"State":"running"}',
     "bad format"),
    (S.container_path(REL, 0, ID_A), '{"Names":[],"Created":1,"State":"sleepy"}',
     "State must be"),
    (S.container_path(REL, 0, ID_A), '{"Names":[],"Created":1,"State":"running",'
     '"Ports":[{"PrivatePort":70000,"Type":"tcp"}]}', "PrivatePort out of range"),
    (S.container_path(REL, 0, ID_A), '{"Names":[],"Created":1,"State":"running",'
     '"Labels":{"k":["v"]}}', "label value must be a string"),
    (S.container_path(REL, 0, ID_A), '{"Names":[],"Created":1,"State":"running",'
     '"Image":"$(reboot)"}', "Image has a bad format"),
])
def test_bad_values(guest, dom0, path, value, reason):
    guest.write(path, value)
    assert reason in report_error(dom0)


@pytest.mark.parametrize("node, reason", [
    (S.container_path(REL, 0, "A" * 64), "not a container id"),
    (S.container_path(REL, 0, "a" * 63), "not a container id"),
    (S.container_path(REL, 0, "web-1"), "not a container id"),
    (REL.containers + "/abc/" + ID_A, "not a page number"),
    (REL.containers + "/99/" + ID_A, "not a page number"),
    (REL.containers + "/01/" + ID_A, "not a page number"),
    (S.container_path(REL, 1, ID_A), "listed twice"),
])
def test_ids_that_are_not_ids(guest, dom0, node, reason):
    guest.write(node, S.encode_container(summary(ID_A, "x"))[1])
    assert reason in report_error(dom0)


def test_oversized_values_are_refused_by_xenstore_and_by_dom0(guest, dom0):
    with pytest.raises(XenstoreError) as caught:
        guest.write(REL.state, "x" * 2049)
    assert caught.value.code == "E2BIG"
    # the largest value xenstore takes, as a plausible-looking but oversized field
    value = '{"Names":["/%s"],"Created":1,"State":"running"}' % ("n" * 2000)
    guest.write(S.container_path(REL, 0, ID_A), value)
    assert "longer than 256" in report_error(dom0)


def test_deep_paths_and_thousands_of_nodes(guest, dom0):
    tail = "".join("/d%d" % i for i in range(300))
    # below a valid container node: dom0 never reads deeper than the layout
    guest.write(S.container_path(REL, 0, ID_A) + tail, "x")
    assert len(T.read_report(dom0, DOMID).containers) == 2
    # where a container node should be: that node is then empty
    guest.write(S.container_path(REL, 0, "c" * 64) + tail, "x")
    assert "empty value" in report_error(dom0)
    guest.rm(REL.containers)    # the deep paths used 600 nodes of the quota
    write_valid(guest)
    # as many nodes as the guest's quota allows, in one page
    made = 0
    try:
        while made < 5000:
            guest.write(S.container_path(REL, 0, "%064x" % made), "{}")
            made += 1
    except XenstoreError as error:
        assert error.code == "EQUOTA"
    assert made > 900
    message = report_error(dom0)
    assert "too many" in message or "entries" in message
    # and as many pages as names allow
    guest.rm(REL.containers)
    for page in range(40):
        guest.write("%s/%d/%s" % (REL.containers, page, ID_A), "{}")
    assert "entries (at most 16)" in report_error(dom0)


def test_a_report_changing_a_thousand_times_a_second(guest, dom0):
    stop = threading.Event()
    writes = [0]

    def churn():
        seq = 1
        while not stop.is_set():
            seq += 1
            guest.write(REL.state, STATE_OK.replace('"seq":1', '"seq":%d' % seq))
            writes[0] += 1

    thread = threading.Thread(target=churn)
    thread.start()
    outcomes = {"ok": 0, "too fast": 0}
    began = time.monotonic()
    try:
        while time.monotonic() - began < 3:
            call = time.monotonic()
            try:
                T.read_report(dom0, DOMID)
                outcomes["ok"] += 1
            except S.ReportError as error:
                assert "changes too fast" in str(error)
                outcomes["too fast"] += 1
            assert time.monotonic() - call < 1
    finally:
        stop.set()
        thread.join()
    rate = writes[0] / (time.monotonic() - began)
    assert rate > 1000, rate
    assert sum(outcomes.values()) > 20 and outcomes["too fast"] > 0
    T.read_report(dom0, DOMID)      # once it calms down it reads fine


def fake_agent(guest, answer_with, stop, ready):
    """Plays a hostile agent: answers every request with answer_with(path)."""
    guest.watch(REL.requests, "fake")
    ready.set()
    while not stop.is_set():
        if guest.wait_event(0.1) is None:
            continue
        try:
            ids = guest.directory(REL.requests)
        except XenstoreError:
            continue
        for request_id in ids:
            answer_with(guest, S.answer_path(REL, request_id))


@pytest.mark.parametrize("writes, reason", [
    ({"": "{oops"}, "malformed JSON"),
    ({"": '{"status":"done","code":"","reason":"","chunks":99}'}, "chunks out of range"),
    ({"": '{"status":"done","code":"","reason":"","chunks":3}', "/0": "{"},
     "cannot read it (ENOENT)"),
    ({"/0": '{"Id":"nope"}', "": '{"status":"done","code":"","reason":"","chunks":1}'},
     "inspect answer without a valid Id"),
    ({"": '{"status":"maybe","code":"","reason":"","chunks":0}'}, "status must be"),
    ({"/0": "[" * 40 + "]" * 40, "": '{"status":"done","code":"","reason":"","chunks":1}'},
     "nested deeper"),
])
def test_hostile_answers(xsd, domain, dom0, writes, reason):
    stop, ready = threading.Event(), threading.Event()

    def answer_with(guest, path):
        for suffix, value in sorted(writes.items(), key=lambda kv: kv[0] == ""):
            guest.write(path + suffix, value)

    with xsd.client(DOMID) as guest:
        write_valid(guest)
        thread = threading.Thread(target=fake_agent, args=(guest, answer_with, stop, ready))
        thread.start()
        assert ready.wait(5)
        try:
            client = T.AgentDocker(dom0, DOMID, VM_UUID, timeout=5)
            began = time.monotonic()
            with pytest.raises(XscError) as caught:
                client.inspect("c0")
            assert time.monotonic() - began < 4
            assert caught.value.code == T.ERR_AGENT_INVALID
            assert reason in caught.value.params[1]
        finally:
            stop.set()
            thread.join()
