"""The monitor's event-stream reader and its XAPI outbox, without a lab."""
import asyncio
import json
import threading
import time

import pytest

from dom0_plugin import docker_api
from dom0_plugin.errors import DockerError, DockerUnavailable, ProtocolError, ResponseTooLarge
from dom0_plugin.monitor import events_stream, xapi_link


def run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


def source(data, piece=7):
    """An async read(n) over ``data`` in small uneven pieces, then EOF."""
    view = {"pos": 0}

    async def read(n):
        start = view["pos"]
        view["pos"] = min(len(data), start + min(n, piece))
        return data[start:view["pos"]]
    return read


def chunked(*bodies):
    out = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    for body in bodies:
        out += b"%x\r\n%s\r\n" % (len(body), body)
    return out


def event(action, cid="a" * 64, kind="container"):
    return json.dumps({"Type": kind, "Action": action, "Actor": {"ID": cid},
                       "time": 1}).encode() + b"\n"


async def collect(stream, most=1000):
    await stream.read_head()
    out = []
    for _ in range(most):
        e = await stream.next()
        if e is None:
            break
        out.append(e)
    return out


def test_events_are_decoded_across_chunk_and_read_boundaries():
    data = chunked(event("create"), event("start")[:10], event("start")[10:] + event("die"),
                   b"") + b"0\r\n\r\n"
    events = run(collect(events_stream.EventStream(source(data, piece=5), "vm")))
    assert [e["Action"] for e in events] == ["create", "start", "die"]


def test_an_endless_event_is_refused_not_buffered():
    data = chunked(b"{" + b"x" * (docker_api.MAX_EVENT_BYTES + 10))
    with pytest.raises(ResponseTooLarge):
        run(collect(events_stream.EventStream(source(data, piece=65536), "vm")))


@pytest.mark.parametrize("data,error", [
    (b"SSH-2.0-OpenSSH\r\n\r\n", ProtocolError),
    (b"HTTP/1.1 500 Oops\r\nContent-Length: 5\r\n\r\nboom!", DockerError),
    (chunked(b"not json\n"), ProtocolError),
    (chunked(b"[1,2]\n"), ProtocolError),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", ProtocolError),
    (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 200 + b"\r\n", ProtocolError),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc", DockerUnavailable),
])
def test_bad_streams_raise_clear_errors(data, error):
    with pytest.raises(error):
        run(collect(events_stream.EventStream(source(data), "vm")))


def test_stream_end_is_reported():
    data = chunked(event("start")) + b"0\r\n\r\n"
    assert len(run(collect(events_stream.EventStream(source(data), "vm")))) == 1


def test_classify():
    cid = "b" * 64
    assert events_stream.classify(json.loads(event("start", cid))) == (cid, True, True)
    assert events_stream.classify(json.loads(event("exec_start: sh -c x", cid))) == (
        cid, False, False)
    assert events_stream.classify(json.loads(event("top", cid))) == (cid, False, False)
    assert events_stream.classify(json.loads(event("rename", cid))) == (cid, True, False)
    assert events_stream.classify(json.loads(event("health_status: healthy", cid))) == (
        cid, False, False)
    assert events_stream.classify(json.loads(event("destroy", "../x"))) == (None, True, True)
    assert events_stream.classify(json.loads(event("delete", kind="image"))) == (
        None, False, True)
    assert events_stream.classify({"Type": "network", "Action": "connect"}) == (
        None, False, False)
    assert events_stream.classify({"status": "die", "id": cid}) == (cid, True, True)


def test_request_bytes():
    req = events_stream.request_bytes((1, 41), events_stream.FILTERS)
    assert req.startswith(b"GET /v1.41/events?filters=") and req.endswith(b"\r\n\r\n")


# ---------------------------------------------------------------- outbox

def test_outbox_coalesces_and_keeps_order():
    box = xapi_link.Outbox(shards=1, interval=1.0)
    box.set_key("vm1", "r1", "docker_ps", "a")
    box.set_key("vm1", "r1", "xscontainer-status", "s")
    box.set_key("vm1", "r1", "docker_ps", "b")
    box.message("vm1", "r1", "post", "M", "body")
    box.message("vm1", "r1", "clear", "M")
    uuid, batch = box.take(0, timeout=0.1)
    assert uuid == "vm1"
    assert list(batch.keys.items()) == [("xscontainer-status", "s"), ("docker_ps", "b")]
    assert batch.messages == [("clear", "M", "")]
    assert box.take(0, timeout=0.05) is None


def test_outbox_rate_limits_each_vm_not_the_others():
    box = xapi_link.Outbox(shards=1, interval=0.3)
    box.set_key("vm1", "r1", "k", "1")
    assert box.take(0, 0.1)[0] == "vm1"
    box.set_key("vm1", "r1", "k", "2")
    box.set_key("vm2", "r2", "k", "1")
    t = time.monotonic()
    assert box.take(0, 1.0)[0] == "vm2"
    assert time.monotonic() - t < 0.1
    assert box.take(0, 1.0)[0] == "vm1"
    assert time.monotonic() - t >= 0.25


def test_outbox_lets_a_short_burst_through_at_once():
    box = xapi_link.Outbox(shards=1, interval=0.5, burst=3)
    t = time.monotonic()
    for value in "123":             # stop, start, stop: each written at once
        box.set_key("vm1", "r1", "k", value)
        assert box.take(0, 1.0)[1].keys == {"k": value}
    assert time.monotonic() - t < 0.2
    box.set_key("vm1", "r1", "k", "4")      # sustained churn: the interval applies
    assert box.take(0, 1.0)[1].keys == {"k": "4"}
    assert time.monotonic() - t >= 0.4


def test_outbox_put_back_never_undoes_a_newer_value():
    box = xapi_link.Outbox(shards=1, interval=0.0)
    box.set_key("vm1", "r1", "a", "old")
    box.set_key("vm1", "r1", "b", "old")
    _, batch = box.take(0, 0.1)
    box.set_key("vm1", "r1", "a", "new")
    box.put_back("vm1", batch)
    _, merged = box.take(0, 0.1)
    assert merged.keys == {"b": "old", "a": "new"}
    box.set_key("vm1", "r1", "a", "x")
    box.discard("vm1")
    assert box.take(0, 0.05) is None


class FakeXenapi(object):
    """Records calls; fails the first ``fail`` ones with ``error``."""

    def __init__(self, fail=0, error=None):
        self.calls = []
        self.fail = fail
        self.error = error
        outer = self

        class Method(object):
            def __init__(self, name):
                self.name = name

            def __getattr__(self, attr):
                return Method(attr if not self.name else self.name + "." + attr)

            def __call__(self, *args):
                if outer.fail:
                    outer.fail -= 1
                    raise outer.error
                outer.calls.append((self.name,) + args)
                if self.name == "message.get":
                    return {"OpaqueRef:m1": {"name": "M"}, "OpaqueRef:m2": {"name": "N"}}
                return None
        self.xenapi = Method("")


class FakeConnector(object):
    def __init__(self, session):
        self.session = session
        self.logins = 0

    def login(self):
        self.logins += 1
        return self.session


class Failure(Exception):
    def __init__(self, details):
        Exception.__init__(self, details)
        self.details = details


def test_writer_writes_single_keys_and_messages():
    session = FakeXenapi()
    box = xapi_link.Outbox(shards=1, interval=0.0)
    stats = xapi_link.WriteStats()
    writer = xapi_link.Writer(box, 0, FakeConnector(session), stats)
    box.set_key("vm1", "r1", "docker_ps", "doc")
    box.set_key("vm1", "r1", "xscontainer-status", None)
    box.message("vm1", "r1", "clear", "M")
    writer._write(*box.take(0, 0.1))
    names = [c[0] for c in session.calls]
    assert names == ["VM.remove_from_other_config", "VM.add_to_other_config",
                     "VM.remove_from_other_config", "message.get", "message.destroy"]
    assert session.calls[-1][1] == "OpaqueRef:m1"
    assert "set_other_config" not in " ".join(names)
    assert stats.snapshot()["batches"] == 1


def test_writer_logs_in_again_after_xapi_restart():
    session = FakeXenapi(fail=1, error=Failure(["SESSION_INVALID", "OpaqueRef:x"]))
    box = xapi_link.Outbox(shards=1, interval=0.0)
    connector = FakeConnector(session)
    writer = xapi_link.Writer(box, 0, connector, xapi_link.WriteStats())
    writer.backoff = xapi_link.Backoff(0.01, 0.01)
    box.set_key("vm1", "r1", "k", "v")
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    deadline = time.time() + 5
    while time.time() < deadline and not any(c[0] == "VM.add_to_other_config"
                                             for c in session.calls):
        time.sleep(0.01)
    writer.stopping.set()
    box.close()
    assert connector.logins == 2
    assert ("VM.add_to_other_config", "r1", "k", "v") in session.calls


def test_writer_drops_writes_of_a_deleted_vm():
    session = FakeXenapi(fail=1, error=Failure(["HANDLE_INVALID", "VM", "r1"]))
    box = xapi_link.Outbox(shards=1, interval=0.0)
    writer = xapi_link.Writer(box, 0, FakeConnector(session), xapi_link.WriteStats())
    box.set_key("vm1", "r1", "k", "v")
    uuid, batch = box.take(0, 0.1)
    try:
        writer._write(uuid, batch)
    except Failure as error:
        writer._failed(uuid, batch, error)
    assert box.size() == 0
