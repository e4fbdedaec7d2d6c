"""DockerClient against a scripted peer: framing, bounds, timeouts, reconnection."""

import errno
import json
import os
import struct
import subprocess
import threading
import time

import pytest

from dom0_plugin import constants as C
from dom0_plugin import docker_api
from dom0_plugin.docker_api import DockerClient
from dom0_plugin.errors import XscError
from tests.dom0.fake_engine import VERSION_141, FakeEngine, http

VM = "vm-under-test"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def client_for(handler, version=VERSION_141, **kwargs):
    fake = FakeEngine(handler, version)
    kwargs.setdefault("timeout", 2.0)
    return fake, DockerClient(connect=fake.connect, vm=VM, **kwargs)


def code_of(excinfo):
    return excinfo.value.code


# --- negotiation and paths ----------------------------------------------------------------

@pytest.mark.parametrize("server,expected", [
    ("1.41", (1, 41)), ("1.45", (1, 45)), ("1.51", (1, 51)), ("1.52", (1, 51)),
    ("1.24", (1, 24)),
])
def test_negotiates_highest_common_version(server, expected):
    fake, client = client_for(lambda r, s: http(200, {}),
                              version={"ApiVersion": server, "MinAPIVersion": "1.12"})
    client.info()
    assert client.api_version == expected
    assert fake.requests[0].target == "/version"
    assert fake.requests[1].target == "/v%d.%d/info" % expected


@pytest.mark.parametrize("version", [
    {"ApiVersion": "1.20"},                                 # too old
    {"ApiVersion": "1.60", "MinAPIVersion": "1.52"},        # too new for us
])
def test_incompatible_engine_is_refused(version):
    """Answers no real engine here gives (an engine whose minimum API is above ours, one
    older than API 1.24): a version mismatch has its own error, not "check the daemon"."""
    _, client = client_for(lambda r, s: http(200, {}), version=version)
    with pytest.raises(XscError) as excinfo:
        client.info()
    assert code_of(excinfo) == C.ERR_DOCKER_API_UNSUPPORTED
    assert excinfo.value.params[2] == "1.24-1.51"
    text = excinfo.value.message()
    assert "Update xscontainer-ng" in text and "docker' group" not in text


def test_missing_api_version_is_a_protocol_error():
    _, client = client_for(lambda r, s: http(200, {}), version={"Version": "x"})
    with pytest.raises(XscError) as excinfo:
        client.ps()
    assert code_of(excinfo) == C.ERR_PROTOCOL_ERROR


def test_query_and_path_encoding():
    fake, client = client_for(lambda r, s: http(200, {"Id": "a" * 64}))
    client.inspect("my.web-1_x")
    assert fake.requests[-1].target == "/v1.41/containers/my.web-1_x/json"
    fake2, client2 = client_for(lambda r, s: http(200, []))
    client2.ps(all=True)
    assert fake2.requests[-1].target == "/v1.41/containers/json?all=1"
    assert fake2.requests[-1].headers["host"] == "docker"


@pytest.mark.parametrize("ref", ["../x", "a/b", "a?b", "a%2Fb", "a;b", "a b", "a\n",
                                 "a\x00", "", "x" * 10000, "\u00e9t\u00e9", "/a", ".."])
def test_bad_refs_never_reach_the_wire(ref):
    fake, client = client_for(lambda r, s: http(200, {}))
    for call in (client.inspect, client.top, client.start, client.stop, client.logs,
                 client.stats, client.resolve, client.pause):
        with pytest.raises(XscError) as excinfo:
            call(ref)
        assert code_of(excinfo) == C.ERR_INVALID_ARGUMENT
    assert fake.connections == 0


# --- framing ----------------------------------------------------------------------------

def test_chunked_body_with_extensions_and_trailers():
    payload = [{"Id": "%064x" % i, "Names": ["/c%d" % i]} for i in range(50)]
    _, client = client_for(lambda r, s: http(200, payload, chunked=True))
    assert client.ps() == payload


def test_chunked_body_split_across_writes():
    body = json.dumps({"a": "b" * 1000}).encode()
    raw = http(200, body, chunked=True)

    def handler(request, sock):
        for i in range(0, len(raw), 3):
            sock.sendall(raw[i:i + 3])
        return b""
    _, client = client_for(handler)
    assert client.info() == {"a": "b" * 1000}


def test_until_close_body_and_http10():
    def handler(request, sock):
        sock.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + json.dumps({"x": 1}).encode())
        return None
    fake, client = client_for(handler)
    assert client.info() == {"x": 1}
    assert client.info() == {"x": 1}
    assert fake.connections == 2   # version + info on the first, which then closes


def test_keep_alive_reuses_one_stream():
    fake, client = client_for(lambda r, s: http(200, {"ok": True}))
    for _ in range(5):
        client.info()
    assert fake.connections == 1 and client.connections_opened == 1
    assert len(fake.requests) == 6


def test_connection_close_header_reconnects():
    fake, client = client_for(
        lambda r, s: http(200, {"ok": 1}, headers=["Connection: close"]))
    client.info()
    client.info()
    assert client.connections_opened == 2


def test_stale_keep_alive_stream_is_retried_once():
    answered = []

    def handler(request, sock):
        if sock in answered:
            return None                 # closes without answering the second request
        answered.append(sock)
        return http(200, {"n": len(answered)})
    fake, client = client_for(handler)
    assert client.info() == {"n": 1}    # version + info on stream 1
    assert client.info() == {"n": 2}    # stream 1 closed: retried once on stream 2
    assert client.connections_opened == 2


def test_closed_without_connect_is_docker_unavailable():
    fake = FakeEngine(lambda r, s: None, version=None)
    client = DockerClient(stream=fake.connect(), vm=VM, timeout=2)
    with pytest.raises(XscError) as excinfo:
        client.version()
    assert code_of(excinfo) == C.ERR_DOCKER_UNAVAILABLE
    with pytest.raises(XscError) as excinfo:
        client.version()
    assert "closed" in excinfo.value.params[1]


def test_100_continue_is_skipped():
    _, client = client_for(
        lambda r, s: b"HTTP/1.1 100 Continue\r\n\r\n" + http(200, {"y": 2}))
    assert client.info() == {"y": 2}


def test_eof_in_the_middle_of_a_body():
    def handler(request, sock):
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"a\":")
        return None
    _, client = client_for(handler)
    with pytest.raises(XscError) as excinfo:
        client.info()
    assert code_of(excinfo) == C.ERR_DOCKER_UNAVAILABLE


@pytest.mark.parametrize("garbage", [
    b"SSH-2.0-OpenSSH\r\n\r\n",
    b"Last login: yesterday\n",
    b"HTTP/1.1 2xx OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcdef\r\n",
    b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 200 + b"\r\n",
    b"HTTP/1.1 200 OK\r\nX: " + b"y" * 20000 + b"\r\n\r\n",
    b"x" * 100000,
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nnope!",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]",     # info must be an object
])
def test_malformed_answers_are_protocol_errors(garbage):
    _, client = client_for(lambda r, s: garbage)
    with pytest.raises(XscError) as excinfo:
        client.info()
    assert code_of(excinfo) == C.ERR_PROTOCOL_ERROR


# --- bounds -----------------------------------------------------------------------------

def test_content_length_over_limit_is_refused_before_reading():
    def handler(request, sock):
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n")
        return b""
    _, client = client_for(handler, max_body=1000)
    with pytest.raises(XscError) as excinfo:
        client.info()
    assert code_of(excinfo) == C.ERR_RESPONSE_TOO_LARGE


def test_endless_chunked_body_stops_at_the_limit():
    sent = {"bytes": 0}

    def handler(request, sock):
        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            while True:
                sock.sendall(b"1000\r\n" + b"[" * 4096 + b"\r\n")
                sent["bytes"] += 4096
        except OSError:
            return None
    _, client = client_for(handler, max_body=100000)
    with pytest.raises(XscError) as excinfo:
        client.info()
    assert code_of(excinfo) == C.ERR_RESPONSE_TOO_LARGE
    assert excinfo.value.params[2] == "100000"


def test_error_body_is_bounded_and_sanitised():
    message = "bad \x1b[31mthing\x00\n" + "z" * 5000
    _, client = client_for(lambda r, s: http(500, {"message": message}))
    with pytest.raises(XscError) as excinfo:
        client.info()
    assert excinfo.value.code == C.ERR_DOCKER_ERROR
    status, text = excinfo.value.params
    assert status == "500"
    assert "\x1b" not in text and "\x00" not in text and "\n" not in text
    assert text.startswith("bad [31mthing") and len(text) <= 500


def test_404_on_a_container_and_elsewhere():
    _, client = client_for(lambda r, s: http(404, {"message": "No such container: web"}))
    with pytest.raises(XscError) as excinfo:
        client.inspect("web")
    assert excinfo.value.failure() == [C.ERR_NO_SUCH_CONTAINER, VM, "web"]
    with pytest.raises(XscError) as excinfo:
        client.info()
    assert excinfo.value.failure() == [C.ERR_DOCKER_ERROR, "404", "No such container: web"]


# --- timeouts ---------------------------------------------------------------------------

def test_silent_peer_times_out():
    _, client = client_for(lambda r, s: (time.sleep(5), None)[1], version=None,
                           timeout=0.3)
    started = time.monotonic()
    with pytest.raises(XscError) as excinfo:
        client.version()
    assert code_of(excinfo) == C.ERR_TIMEOUT
    assert excinfo.value.params == [VM, "GET /version"]
    assert time.monotonic() - started < 2


def test_dripping_peer_hits_the_request_deadline():
    def handler(request, sock):
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        try:
            while True:
                sock.sendall(b" ")
                time.sleep(0.05)
        except OSError:
            return None
    _, client = client_for(handler, version=None, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(XscError) as excinfo:
        client.version()
    assert code_of(excinfo) == C.ERR_TIMEOUT
    assert time.monotonic() - started < 2


def test_connect_errors_are_explained():
    def denied():
        raise PermissionError(errno.EACCES, "Permission denied")

    def refused():
        raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    for connect, words in ((denied, "permission denied"), (refused, "not running")):
        client = DockerClient(connect=connect, vm=VM)
        with pytest.raises(XscError) as excinfo:
            client.ps()
        assert excinfo.value.code == C.ERR_DOCKER_UNAVAILABLE
        assert words in excinfo.value.params[1]


def test_unix_connector_to_a_missing_socket(tmp_path):
    client = DockerClient(connect=docker_api.unix_connector(str(tmp_path / "none.sock")),
                          vm=VM)
    with pytest.raises(XscError) as excinfo:
        client.ps()
    assert excinfo.value.code == C.ERR_DOCKER_UNAVAILABLE
    assert "not running" in excinfo.value.params[1]


# --- events -----------------------------------------------------------------------------

def _events_handler(lines, then=None):
    def handler(request, sock):
        if not request.target.startswith("/v1.41/events"):
            return http(200, [])
        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for line in lines:
            sock.sendall(b"%x\r\n%s\r\n" % (len(line), line))
        if then is not None:
            return then(sock)
        sock.sendall(b"0\r\n\r\n")
        return b""
    return handler


def test_events_split_across_chunks():
    events = [{"Type": "container", "Action": "start", "id": "%064x" % i} for i in range(3)]
    stream = b"".join(json.dumps(e).encode() + b"\n" for e in events)
    pieces = [stream[i:i + 5] for i in range(0, len(stream), 5)]
    fake, client = client_for(_events_handler(pieces))
    with client.events(filters={"type": ["container"]}) as stream_:
        assert list(stream_) == events
    target = fake.requests[-1].target
    assert "filters=" in target and "%22container%22" in target
    assert client.ps() == []            # the stream ended cleanly: connection reusable
    assert client.connections_opened == 1


def test_endless_event_line_is_bounded():
    def endless(sock):
        try:
            while True:
                sock.sendall(b"1000\r\n" + b"{" * 4096 + b"\r\n")
        except OSError:
            return None
    _, client = client_for(_events_handler([b'{"Action": "x",'], then=endless))
    events = client.events()
    with pytest.raises(XscError) as excinfo:
        next(events)
    assert excinfo.value.code == C.ERR_RESPONSE_TOO_LARGE
    assert client.ps() == []            # a new stream serves the next request


def test_events_idle_timeout_and_client_reuse():
    def idle(sock):
        time.sleep(3)
        return None
    fake, client = client_for(_events_handler([b'{"Action": "start"}\n'], then=idle))
    events = client.events(idle_timeout=0.3)
    assert next(events) == {"Action": "start"}
    with pytest.raises(RuntimeError):
        client.info()                   # the connection is busy streaming
    with pytest.raises(XscError) as excinfo:
        next(events)
    assert excinfo.value.code == C.ERR_TIMEOUT
    assert client.ps() == []


def test_events_garbage_line():
    _, client = client_for(_events_handler([b"not json\n"]))
    with pytest.raises(XscError) as excinfo:
        list(client.events())
    assert excinfo.value.code == C.ERR_PROTOCOL_ERROR


def test_unstarted_event_stream_close_frees_the_client():
    _, client = client_for(_events_handler([], then=lambda s: (time.sleep(2), None)[1]))
    stream = client.events()
    stream.close()
    assert client.ps() == []


def test_close_from_another_thread_ends_the_wait():
    _, client = client_for(_events_handler([], then=lambda s: (time.sleep(5), None)[1]))
    events = client.events()
    threading.Timer(0.2, client.close).start()
    started = time.monotonic()
    with pytest.raises(XscError):
        next(events)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("filters", [{"type": 1}, {"Bad Name": ["x"]}, ["x"],
                                     {"t": ["x" * 1000]}])
def test_bad_filters(filters):
    _, client = client_for(lambda r, s: http(200, []))
    with pytest.raises(XscError) as excinfo:
        client.events(filters=filters)
    assert excinfo.value.code == C.ERR_INVALID_ARGUMENT


# --- logs framing -----------------------------------------------------------------------

def frame(kind, data):
    return struct.pack(">BxxxL", kind, len(data)) + data


def _logs_handler(body, tty=False):
    def handler(request, sock):
        if request.target.endswith("/json"):
            return http(200, {"Id": "a" * 64, "Config": {"Tty": tty}})
        return http(200, body, chunked=True)
    return handler


def test_logs_demultiplexed():
    body = frame(1, b"out 1\n") + frame(2, b"err 1\n") + frame(1, b"out 2\n" * 3)
    _, client = client_for(_logs_handler(body))
    logs = client.logs("web")
    assert logs.frames == [("stdout", "out 1\n"), ("stderr", "err 1\n"),
                           ("stdout", "out 2\n" * 3)]
    assert not logs.truncated


def test_logs_keep_the_last_bytes():
    body = b"".join(frame(1 + i % 2, b"line %05d\n" % i) for i in range(2000))
    _, client = client_for(_logs_handler(body))
    logs = client.logs("web", max_bytes=100)
    text = "".join(t for _, t in logs.frames)
    assert logs.truncated and len(text) == 100
    assert text.endswith("line 01999\n")


def test_logs_tty_is_raw():
    _, client = client_for(_logs_handler(b"\x01\x00 raw tty bytes", tty=True))
    assert client.logs("web").frames == [("stdout", "\x01\x00 raw tty bytes")]


def test_logs_bad_frame_header():
    _, client = client_for(_logs_handler(b"\x09\x00\x00\x00\x00\x00\x00\x01x"))
    with pytest.raises(XscError) as excinfo:
        client.logs("web")
    assert excinfo.value.code == C.ERR_PROTOCOL_ERROR


@pytest.mark.parametrize("kwargs", [{"tail": -1}, {"tail": 10001}, {"tail": "x"},
                                    {"since": -5}, {"since": "yesterday"},
                                    {"max_bytes": 0}, {"max_bytes": 10 ** 9}])
def test_logs_arguments_checked(kwargs):
    fake, client = client_for(_logs_handler(b""))
    with pytest.raises(XscError) as excinfo:
        client.logs("web", **kwargs)
    assert excinfo.value.code == C.ERR_INVALID_ARGUMENT
    assert fake.connections == 0


def test_demultiplexer_any_split():
    data = frame(1, b"hello") + frame(2, b"") + frame(2, b"world!") + frame(1, b"x" * 300)
    expected = [("stdout", b"hello"), ("stderr", b"world!"), ("stdout", b"x" * 300)]
    for size in (1, 2, 3, 7, 8, 9, 64, len(data)):
        demux = docker_api._Demultiplexer(VM)
        got = []
        for i in range(0, len(data), size):
            for stream, piece in demux.feed(data[i:i + size]):
                if got and got[-1][0] == stream:
                    got[-1] = (stream, got[-1][1] + piece)
                else:
                    got.append((stream, piece))
        assert got == expected, size


# --- stats summary ----------------------------------------------------------------------

def test_summarise_stats_cgroup_v1_and_v2():
    raw = {
        "cpu_stats": {"cpu_usage": {"total_usage": 3000, "percpu_usage": [1, 2]},
                      "system_cpu_usage": 20000, "online_cpus": 2},
        "precpu_stats": {"cpu_usage": {"total_usage": 1000}, "system_cpu_usage": 10000},
        "memory_stats": {"usage": 1000, "limit": 4000,
                         "stats": {"total_inactive_file": 200}},
        "networks": {"eth0": {"rx_bytes": 5, "tx_bytes": 6},
                     "eth1": {"rx_bytes": 1, "tx_bytes": 1}},
        "blkio_stats": {"io_service_bytes_recursive": [
            {"op": "Read", "value": 10}, {"op": "Write", "value": 20},
            {"op": "read", "value": 1}, {"op": "Total", "value": 31}]},
        "pids_stats": {"current": 3},
    }
    stats = docker_api.summarise_stats(raw)
    assert stats.cpu_percent == 40.0
    assert (stats.memory_usage, stats.memory_limit, stats.memory_percent) == (800, 4000, 20.0)
    assert (stats.network_rx, stats.network_tx) == (6, 7)
    assert (stats.block_read, stats.block_write, stats.pids) == (11, 20, 3)
    raw["memory_stats"]["stats"] = {"inactive_file": 100}
    raw["precpu_stats"] = {}
    stats = docker_api.summarise_stats(raw)
    assert stats.memory_usage == 900 and stats.cpu_percent is None


@pytest.mark.parametrize("raw", [{}, {"cpu_stats": "x", "memory_stats": [1],
                                      "networks": {"a": None}, "blkio_stats": {
                                          "io_service_bytes_recursive": [None, 3]},
                                      "pids_stats": {"current": "7"}},
                                 {"memory_stats": {"usage": float("nan"), "limit": -1}}])
def test_summarise_stats_garbage(raw):
    stats = docker_api.summarise_stats(raw)
    assert stats.memory_usage == 0 and stats.pids == 0 and stats.cpu_percent is None


def test_pause_409_when_already_paused_is_success():
    def handler(request, sock):
        if request.method == "POST":
            return http(409, {"message": "Container x is already paused"})
        return http(200, {"Id": "a" * 64, "State": {"Running": True, "Paused": True}})
    _, client = client_for(handler)
    client.pause("x")
    with pytest.raises(XscError) as excinfo:
        client.unpause("x")
    assert excinfo.value.params[0] == "409"


SMOKE36 = r'''
import struct
from dom0_plugin import docker_api, documents
from tests.dom0.fake_engine import FakeEngine, http

def frame(k, d):
    return struct.pack(">BxxxL", k, len(d)) + d

def handler(r, s):
    if "/containers/web/json" in r.target:
        return http(200, {"Id": "a" * 64, "Config": {"Tty": False}})
    if "/logs" in r.target:
        return http(200, frame(1, b"o\n") + frame(2, b"e\n"), chunked=True)
    if "/events" in r.target:
        s.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\n{}\n{}\r\n0\r\n\r\n")
        return b""
    if "/stats" in r.target:
        return http(200, {"memory_stats": {"usage": 5, "limit": 10}})
    return http(200, [{"Id": "b" * 64, "Names": ["/x"], "State": "paused"}], chunked=True)

fake = FakeEngine(handler)
client = docker_api.DockerClient(connect=fake.connect, vm="v", timeout=5)
assert "<status>Up (Paused)</status>" in documents.render_ps(client.ps())
assert client.logs("web").frames == [("stdout", "o\n"), ("stderr", "e\n")]
assert client.stats("web").memory_percent == 50.0
assert list(client.events()) == [{}, {}]
assert fake.connections == 1
print("ok")
'''


def test_client_runs_on_python36(python36):
    out = subprocess.check_output([python36, "-c", SMOKE36], cwd=REPO,
                                  env={"PATH": "/usr/bin:/bin"}, timeout=60)
    assert out.strip() == b"ok"
