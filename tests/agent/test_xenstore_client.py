"""xsc_contract.xenstore against the lab's xenstored, a misbehaving fake server and a
character device (a pty in raw mode stands in for /dev/xen/xenbus); and the Python 3.6
promise of the modules dom0 imports."""

import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tty

import pytest

from tests import prereq
from xsc_contract import xenstore as X
from tests.agent.conftest import DOMID, REPO

DOM0_MODULES = ("xsc_contract/xenstore.py", "xsc_contract/report_schema.py",
                "dom0_plugin/agent_transport.py")


def test_operations(dom0):
    dom0.write("/t/a", "1")
    dom0.write("/t/b", b"\x00\xff binary")
    assert dom0.read("/t/a") == b"1" and dom0.read("/t/b") == b"\x00\xff binary"
    assert sorted(dom0.directory("/t")) == ["a", "b"]
    dom0.mkdir("/t/c")
    dom0.set_perms("/t/c", ["n0", "r5"])
    assert dom0.get_perms("/t/c") == ["n0", "r5"]
    dom0.rm("/t/a")
    with pytest.raises(X.XenstoreError) as caught:
        dom0.read("/t/a")
    assert caught.value.code == "ENOENT" and X.is_missing(caught.value)
    with pytest.raises(X.XenstoreError) as caught:
        dom0.read("/bad path")
    assert caught.value.code == "EINVAL"
    with pytest.raises(X.XenstoreError) as caught:
        dom0.write("/t/big", "x" * 5000)
    assert caught.value.code == "E2BIG"
    assert not dom0.closed      # refused before sending: the connection is fine
    assert dom0.read("/t/b")


def test_guest_view_relative_paths_and_permissions(xsd, domain, dom0):
    with xsd.client(DOMID) as guest:
        guest.write("data/x", "mine")
        assert dom0.read("/local/domain/%d/data/x" % DOMID) == b"mine"
        with pytest.raises(X.XenstoreError) as caught:
            guest.write("/local/domain/0/steal", "x")
        assert caught.value.code == "EACCES"


def test_watches_and_transactions(xsd, dom0):
    dom0.watch("/w", "tok")
    assert dom0.wait_event(2) == X.WatchEvent("/w", "tok")     # fired when set
    with xsd.client(0) as other:
        other.write("/w/x", "1")
        assert dom0.wait_event(2, token="tok") == X.WatchEvent("/w/x", "tok")
        tx = dom0.transaction_start()
        dom0.write("/w/y", "2", tx)
        other.write("/w/y", "conflict")
        assert dom0.transaction_end(tx) is False                # EAGAIN
        tx = dom0.transaction_start()
        dom0.write("/w/z", "3", tx)
        assert dom0.transaction_end(tx) is True
    assert dom0.wait_event(2).path in ("/w/y", "/w/z")
    assert dom0.wait_event(0.2, token="other") is None
    dom0.unwatch("/w", "tok")
    began = time.monotonic()
    assert dom0.wait_event(0.3) is None
    assert 0.25 < time.monotonic() - began < 2


def test_wake_interrupts_a_wait(dom0):
    threading.Timer(0.2, dom0.wake).start()
    began = time.monotonic()
    assert dom0.wait_event(10) is None
    assert time.monotonic() - began < 2


def test_events_between_calls_are_never_stranded(xsd, dom0):
    """An event read together with a reply (even an error reply) is delivered."""
    dom0.watch("/s", "s")
    dom0.wait_event(1)
    with xsd.client(0) as other:
        for index in range(200):
            other.write("/s/n", str(index))
            try:
                dom0.read("/s/missing")
            except X.XenstoreError:
                pass
            assert dom0.wait_event(2, token="s") is not None, index
            while dom0.wait_event(0, token="s"):
                pass


class FakeServer(object):
    """A Unix socket server answering with ``reply(header) -> bytes`` (or nothing)."""

    def __init__(self, reply):
        self.dir = tempfile.mkdtemp(prefix="xsf", dir="/tmp")
        self.path = os.path.join(self.dir, "s")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.reply = reply
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        conn, _ = self.sock.accept()
        try:
            while True:
                head = conn.recv(16)
                if len(head) < 16:
                    return
                kind, req, tx, length = struct.unpack("<IIII", head)
                if length:
                    conn.recv(length)
                data = self.reply((kind, req, tx, length))
                if data:
                    conn.sendall(data)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def test_no_reply_times_out_and_closes():
    server = FakeServer(lambda head: b"")
    try:
        client = X.Client(server.path, timeout=0.5)
        began = time.monotonic()
        with pytest.raises(X.XenstoreTimeout):
            client.read("/x")
        assert time.monotonic() - began < 2
        with pytest.raises(X.ConnectionLost):
            client.read("/x")
    finally:
        server.close()


def test_oversized_frame_is_refused_without_reading_it():
    huge = struct.pack("<IIII", 2, 1, 0, 10 ** 9)
    server = FakeServer(lambda head: huge + b"x" * 100)
    try:
        client = X.Client(server.path, timeout=2)
        with pytest.raises(X.ConnectionLost) as caught:
            client.read("/x")
        assert "limit 4096" in str(caught.value)
    finally:
        server.close()


def test_wrong_reply_type_is_a_protocol_error():
    server = FakeServer(lambda head: struct.pack("<IIII", 11, head[1], 0, 3) + b"OK\0")
    try:
        client = X.Client(server.path, timeout=2)
        with pytest.raises(X.ConnectionLost):
            client.read("/x")
    finally:
        server.close()


def test_not_a_device_or_socket(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(X.ConnectionLost):
        X.Client(str(path))
    with pytest.raises(X.ConnectionLost):
        X.Client(str(tmp_path / "absent"))


def test_character_device_path():
    """A character device is opened and read/written as raw frames (a pty in raw mode
    plays /dev/xen/xenbus here)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    tty.setraw(master)
    path = os.ttyname(slave)
    assert X.stat.S_ISCHR(os.stat(path).st_mode)

    def server():
        buf = b""
        while len(buf) < 16:
            buf += os.read(master, 4096)
        kind, req, tx, length = struct.unpack("<IIII", buf[:16])
        while len(buf) < 16 + length:
            buf += os.read(master, 4096)
        os.write(master, struct.pack("<IIII", 15, 0, 0, 6) + b"/p\0tk\0"
                 + struct.pack("<IIII", kind, req, 0, 5) + b"value")

    thread = threading.Thread(target=server)
    thread.start()
    client = X.Client(path, timeout=5)
    try:
        assert client.read("data/x") == b"value"
        assert client.wait_event(1) == X.WatchEvent("/p", "tk")
    finally:
        client.close()
        thread.join(5)
        os.close(slave)
        os.close(master)


def test_dom0_modules_import_under_python36(xsd, domain, python36):
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from xsc_contract import xenstore, report_schema\n"
            "from dom0_plugin import agent_transport as T\n"
            "xs = xenstore.Client(%r)\n"
            "print(T.agent_present(xs, %d))\n" % (REPO, xsd.dom0_socket, DOMID))
    out = subprocess.run([python36, "-c", code], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stdout


def test_vermin_python36():
    vermin = os.path.join(os.path.dirname(sys.executable), "vermin")
    if not os.path.exists(vermin):
        prereq.missing("vermin is not installed (make setup)")
    out = subprocess.run([vermin, "--no-tips", "--violations", "-t=3.6-"]
                         + list(DOM0_MODULES), cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True, timeout=120)
    assert out.returncode == 0, out.stdout
