"""DockerClient against a real Docker Engine (Debian's docker.io, see conftest.py)."""

import time
import uuid
import xml.dom.minidom
import xml.etree.ElementTree as ET

import pytest

from dom0_plugin import constants as C
from dom0_plugin import docker_api, documents
from dom0_plugin.docker_api import DockerClient
from dom0_plugin.errors import XscError
from tests.dom0.conftest import IMAGE

VM = "engine-vm"


class Counting(object):
    """A connect() that counts the streams it opens."""

    def __init__(self, path):
        self.connect_unix = docker_api.unix_connector(path)
        self.count = 0

    def __call__(self):
        self.count += 1
        return self.connect_unix()


@pytest.fixture
def client(engine):
    c = DockerClient(connect=docker_api.unix_connector(engine.socket), vm=VM, timeout=30)
    yield c
    c.close()


def run(engine, *args, **kwargs):
    """docker run -d --network none IMAGE ...: (full id, name)."""
    name = kwargs.get("name") or "t-" + uuid.uuid4().hex[:8]
    extra = list(kwargs.get("options", ()))
    cid = engine.docker("run", "-d", "--network", "none", "--name", name, *extra,
                        IMAGE, *args)
    return cid, name


@pytest.fixture
def sleeper(engine):
    cid, name = run(engine, "sleep", "1000", options=["--label", "com.example/x=1",
                                                       "--label", "entry=e"])
    yield cid, name
    engine.docker("rm", "-f", cid, check=False)


def test_negotiation_and_keep_alive(engine):
    connect = Counting(engine.socket)
    client = DockerClient(connect=connect, vm=VM)
    version = client.version()
    spoken = tuple(int(n) for n in version["ApiVersion"].split("."))
    assert client.api_version == min(spoken, docker_api.MAX_API_VERSION)
    # the machine's Docker 20.10, or Debian's newest (26 and later: API 1.45 or more)
    assert spoken == (1, 41) if engine.suite == "machine" else spoken >= (1, 45)
    client.info()
    client.ps()
    client.version()
    assert connect.count == 1
    client.close()
    client.ps()
    assert connect.count == 2
    client.close()


def test_documents_of_real_answers(client, sleeper):
    cid, name = sleeper
    for document, root in ((documents.render_ps(client.ps()), "docker_ps"),
                           (documents.render_info(client.info()), "docker_info"),
                           (documents.render_version(client.version()), "docker_version"),
                           (documents.render_inspect(client.inspect(cid)), "docker_inspect"),
                           (documents.render_top(client.top(cid)), "docker_top")):
        document.encode("utf-8")
        assert document.startswith('<?xml version="1.0" ?><%s' % root)
        xml.dom.minidom.parseString(document)
        assert ET.fromstring(document).tag == root
    ps = ET.fromstring(documents.render_ps(client.ps()))
    entry = [e for e in ps.iter("entry") if e.findtext("id") == cid][0]
    assert entry.findtext("names") == name
    assert entry.findtext("container") == cid[:10]
    assert entry.findtext("status") == "Up"
    assert entry.findtext("state") == "running"
    assert entry.findtext("image") == IMAGE
    assert entry.findtext("command") == "sleep 1000"
    assert len(list(ps.iter("entry"))) == len(client.ps())   # no nested 'entry'
    labels = {e.get("name"): e.text for e in entry.find("labels")}
    assert labels == {"com.example/x": "1", "entry": "e"}
    answer = client.version()
    version = ET.fromstring(documents.render_version(answer))
    assert version.findtext("ApiVersion") == answer["ApiVersion"]    # the engine's own
    assert version.findtext("Version") == answer["Version"]


def test_resolution_by_name_prefix_and_full_id(client, sleeper):
    cid, name = sleeper
    assert client.resolve(name) == cid
    assert client.resolve(cid[:10]) == cid
    assert client.resolve(cid) == cid
    assert client.inspect(cid[:12])["Name"] == "/" + name


def test_missing_container_is_no_such_container(client):
    for call in (client.inspect, client.top, client.start, client.stop, client.pause,
                 client.logs, client.stats, client.resolve):
        with pytest.raises(XscError) as excinfo:
            call("no-such-container")
        assert excinfo.value.failure() == [C.ERR_NO_SUCH_CONTAINER, VM, "no-such-container"]


def test_top(client, sleeper):
    top = client.top(sleeper[1])
    assert "PID" in top["Titles"] and "CMD" in top["Titles"]
    doc = ET.fromstring(documents.render_top(top))
    processes = list(doc.iter("Process"))
    assert len(processes) == 1
    assert processes[0].findtext("CMD") == "sleep 1000"
    assert processes[0].findtext("PID").isdigit()


def test_lifecycle_and_idempotence(client, engine, sleeper):
    cid, name = sleeper

    def state():
        s = client.inspect(cid)["State"]
        return s["Status"]
    client.start(name)                  # already running: 304 is success
    assert state() == "running"
    client.pause(cid[:10])
    client.pause(cid[:10])              # already paused: success
    assert state() == "paused"
    assert documents.normalise_status(
        [c for c in client.ps() if c["Id"] == cid][0]) == C.STATUS_PAUSED
    client.unpause(cid)
    client.unpause(cid)                 # already running: success
    assert state() == "running"
    client.stop(name, grace=0)
    client.stop(name, grace=0)          # already stopped: 304 is success
    assert state() == "exited"
    entry = [c for c in client.ps() if c["Id"] == cid][0]
    assert documents.normalise_status(entry) == "Exited (137)"
    with pytest.raises(XscError) as excinfo:
        client.pause(name)              # not running: Docker's 409 stays an error
    assert excinfo.value.code == C.ERR_DOCKER_ERROR and excinfo.value.params[0] == "409"
    client.start(name)
    client.restart(name, grace=0)
    assert state() == "running"


def test_created_and_exited_status(client, engine):
    created = engine.docker("create", "--network", "none", IMAGE, "true")
    exited, _ = run(engine, "sh", "-c", "exit 3")
    try:
        deadline = time.time() + 20
        while client.inspect(exited)["State"]["Status"] != "exited":
            assert time.time() < deadline
            time.sleep(0.1)
        by_id = dict((c["Id"], c) for c in client.ps())
        assert documents.normalise_status(by_id[created]) == "Exited (0)"
        assert documents.normalise_status(by_id[exited]) == "Exited (3)"
        assert client.ps(all=False) == [c for c in client.ps(all=False)
                                        if c["State"] == "running"]
    finally:
        engine.docker("rm", "-f", created, exited, check=False)


def _wait_for_logs(client, ref, needle):
    deadline = time.time() + 20
    while True:
        logs = client.logs(ref)
        if needle in "".join(t for _, t in logs.frames):
            return logs
        assert time.time() < deadline, logs
        time.sleep(0.1)


def test_logs_demultiplexed_and_bounded(client, engine):
    cid, _ = run(engine, "sh", "-c",
                 "echo out1; echo err1 >&2; echo out2; seq 1 20000; echo last; sleep 1000")
    try:
        logs = _wait_for_logs(client, cid, "last")
        # Docker keeps the order within a stream, not across stdout and stderr.
        out = "".join(t for s, t in logs.frames if s == "stdout")
        assert out.startswith("out1\nout2\n1\n2\n") and out.endswith("20000\nlast\n")
        assert [f for f in logs.frames if f[0] == "stderr"] == [("stderr", "err1\n")]
        assert not logs.truncated
        assert client.logs(cid, tail=1).frames == [("stdout", "last\n")]
        assert client.logs(cid, tail="2").frames == [("stdout", "20000\nlast\n")]
        small = client.logs(cid, max_bytes=50)
        text = "".join(t for _, t in small.frames)
        assert small.truncated and len(text) == 50 and text.endswith("20000\nlast\n")
        assert client.logs(cid, since=int(time.time()) + 3600).frames == []
        assert client.ps()              # the stream is usable after a bounded read
    finally:
        engine.docker("rm", "-f", cid, check=False)


def test_logs_of_a_tty_container(client, engine):
    cid, _ = run(engine, "sh", "-c", "echo tty-out; echo tty-err >&2; sleep 1000",
                 options=["-t"])
    try:
        logs = _wait_for_logs(client, cid, "tty-err")
        assert all(stream == "stdout" for stream, _ in logs.frames)
        assert "tty-out\r\n" in logs.frames[0][1]
    finally:
        engine.docker("rm", "-f", cid, check=False)


def test_stats(client, sleeper):
    stats = client.stats(sleeper[0])
    assert stats.memory_usage > 0 and stats.memory_limit > 0
    assert stats.pids >= 1 and stats.online_cpus >= 1
    assert stats.network_rx == 0 and stats.network_tx == 0     # --network none
    started = time.monotonic()
    sampled = client.stats(sleeper[1], one_shot=False)
    assert sampled.cpu_percent is not None and sampled.cpu_percent >= 0
    assert time.monotonic() - started < 10


def test_events_stream_sees_a_start(engine):
    events_client = DockerClient(connect=docker_api.unix_connector(engine.socket), vm=VM)
    since = int(time.time()) - 1
    stream = events_client.events(since=since, filters={"type": ["container"]},
                                  idle_timeout=30)
    cid, _ = run(engine, "sleep", "1000")
    try:
        for event in stream:
            if event.get("Action") == "start" and event.get("id") == cid:
                break
        stream.close()
        assert events_client.ps()       # usable again after closing the stream
    finally:
        events_client.close()
        engine.docker("rm", "-f", cid, check=False)


def test_events_with_until_end_by_themselves(client, engine):
    cid, _ = run(engine, "true")
    try:
        time.sleep(1.2)
        now = int(time.time())
        events = list(client.events(since=now - 60, until=now,
                                    filters={"container": [cid]}))
        assert {"create", "start", "die"} <= set(e.get("Action") for e in events)
        assert client.ps() is not None
    finally:
        engine.docker("rm", "-f", cid, check=False)


def test_engine_socket_gone_is_docker_unavailable(engine):
    client = DockerClient(connect=docker_api.unix_connector(engine.socket + ".missing"),
                          vm=VM)
    with pytest.raises(XscError) as excinfo:
        client.info()
    assert excinfo.value.code == C.ERR_DOCKER_UNAVAILABLE
