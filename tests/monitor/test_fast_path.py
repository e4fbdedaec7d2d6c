"""The plugin's fast path (monitor_client) and the monitor's socket, without a lab."""
import asyncio
import io
import os
import subprocess
import sys
import threading
import xmlrpc.client

from dom0_plugin import monitor_client
from dom0_plugin.monitor import protocol, server

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VM = "11111111-2222-3333-4444-555555555555"


def test_method_call_as_xapi_writes_it():
    text = ("<methodCall><methodName>get_top</methodName><params><param><value>OpaqueRef:s"
            "</value></param><param><value><struct><member><name>vmuuid</name><value>%s"
            "</value></member><member><name>object</name><value>web &amp; co</value>"
            "</member><member><name>empty</name><value/></member></struct></value></param>"
            "</params></methodCall>" % VM)
    assert monitor_client.parse_method_call(text) == (
        "get_top", "OpaqueRef:s", {"vmuuid": VM, "object": "web & co", "empty": ""})


def test_method_call_as_xmlrpc_writes_it_and_odd_ones():
    text = xmlrpc.client.dumps(("OpaqueRef:s", {"vmuuid": VM, "container": "c1"}), "stop")
    assert monitor_client.parse_method_call(text) == ("stop", "OpaqueRef:s",
                                                      {"vmuuid": VM, "container": "c1"})
    for odd in ("", "<x/>", "<methodCall>", xmlrpc.client.dumps(("s", {"n": 1}), "stop"),
                xmlrpc.client.dumps(("s",), "stop")):
        assert monitor_client.parse_method_call(odd) is None


def test_responses_parse_as_xmlrpc():
    ok = monitor_client.response("Success", "True<?xml version=\"1.0\" ?><a>&amp;\u00e9</a>")
    ok.encode("ascii")
    assert xmlrpc.client.loads(ok)[0][0] == {
        "Status": "Success", "Value": "True<?xml version=\"1.0\" ?><a>&amp;\u00e9</a>"}
    bad = monitor_client.response("Failure", ["XSCONTAINER_NO_SUCH_CONTAINER", VM, "w<"])
    assert xmlrpc.client.loads(bad)[0][0] == {
        "Status": "Failure", "ErrorDescription": ["XSCONTAINER_NO_SUCH_CONTAINER", VM, "w<"]}


def test_frames_round_trip():
    frame = protocol.plugin_call(VM, "get_logs", {"vmuuid": VM, "tail": "5", "x": "a,b:c"})
    header, size = protocol.frame_length(frame)
    assert frame[:1] == protocol.PLUGIN_CALL and frame[header + size:] == b","
    assert protocol.parse_plugin_call(frame[header:header + size]) == (
        VM, "get_logs", {"vmuuid": VM, "tail": "5", "x": "a,b:c"})


def test_no_monitor_means_the_normal_path(tmp_path):
    argv = ["plugin", xmlrpc.client.dumps(("s", {"vmuuid": VM, "object": "w"}), "get_top")]
    assert monitor_client.serve_plugin_call(argv, path=str(tmp_path / "none.sock")) is False
    assert monitor_client.transport_for(VM, lambda: None, str(tmp_path / "none")) is None


def test_fast_path_imports_almost_nothing():
    code = ("import sys; sys.path.insert(0, %r); before = set(sys.modules);"
            "from dom0_plugin import monitor_client;"
            "print(' '.join(sorted(m for m in ('json', 're', 'enum', 'socket', 'XenAPI',"
            "'paramiko', 'asyncssh', 'logging') if m in set(sys.modules) - before)))" % REPO)
    out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, check=True)
    assert out.stdout.decode().strip() == ""


class FakeLink(object):
    def __init__(self, answer):
        self.answer = answer

    async def call(self, fn):
        return fn(self.answer)


class FakeFollower(object):
    def __init__(self, client):
        self.uuid = VM
        self.fresh = True
        self.reason = ""
        self.link = FakeLink(client)
        from dom0_plugin.monitor import model
        self.view = model.view_of("OpaqueRef:vm", {
            "uuid": VM, "name_label": "web", "power_state": "Running",
            "resident_on": "OpaqueRef:h", "other_config": {"xscontainer-monitor": "True"}})


class FakeDocker(object):
    def resolve(self, ref):
        if ref == "missing":
            from dom0_plugin.errors import NoSuchContainer
            raise NoSuchContainer(VM, ref)
        return "a" * 64

    def top(self, ref):
        return {"Titles": ["PID", "CMD", "TIME"], "Processes": [["1", "sleep", "0:00"]]}

    def stop(self, ref, grace=None):
        self.stopped = ref


class FakeManager(object):
    def __init__(self):
        self.followers = {VM: FakeFollower(FakeDocker())}
        self.messages = []

        class Outbox(object):
            def message(box, *args):
                self.messages.append(args)
        self.outbox = Outbox()

    def describe(self):
        return {"fake": True}


def test_socket_serves_plugin_calls_and_docker_verbs(tmp_path):
    path = str(tmp_path / "m.sock")
    loop = asyncio.new_event_loop()
    manager = FakeManager()
    srv = server.RequestServer(manager, path)
    ready = threading.Event()

    def serve():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(srv.start())
        ready.set()
        loop.run_forever()
        srv.close()
        loop.run_until_complete(asyncio.sleep(0.05))
        loop.close()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(5)
    try:
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"
        out = io.StringIO()
        call = xmlrpc.client.dumps(("s", {"vmuuid": VM, "object": "w"}), "get_top")
        assert monitor_client.serve_plugin_call(["p", call], path=path, out=out)
        value = xmlrpc.client.loads(out.getvalue())[0][0]
        assert value["Status"] == "Success" and "<PID>1</PID>" in value["Value"]
        out = io.StringIO()
        call = xmlrpc.client.dumps(("s", {"vmuuid": VM, "container": "missing"}), "stop")
        assert monitor_client.serve_plugin_call(["p", call], path=path, out=out)
        value = xmlrpc.client.loads(out.getvalue())[0][0]
        assert value["ErrorDescription"][0] == "XSCONTAINER_NO_SUCH_CONTAINER"
        # not a function it answers, not a VM it follows: the normal path
        for fn, args in (("register", {"vmuuid": VM}),
                         ("get_top", {"vmuuid": VM.replace("1", "2"), "object": "w"})):
            call = xmlrpc.client.dumps(("s", args), fn)
            assert not monitor_client.serve_plugin_call(["p", call], path=path)
        # docker verbs, with the direct path taking over where the monitor can't
        used = []
        transport = monitor_client.transport_for(VM, lambda: used.append(1), path)
        assert transport.docker().top("w")["Processes"] == [["1", "sleep", "0:00"]]
        assert monitor_client.MonitorConnection(path).request("", "ping")["pid"] > 0
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
