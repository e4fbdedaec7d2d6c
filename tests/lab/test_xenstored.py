"""The lab's xenstore daemon (lab/xenstored), driven as a real process over its sockets:
by Debian's xenstore-* tools (libxenstore) and by a small wire-protocol client."""
import os
import queue
import random
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

import pytest

from tests import prereq
from tests.lab import xs_client as X
from tests.lab.xs_client import Client, Daemon, XsError, make_guest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))



@pytest.fixture(autouse=True)
def xenstore_utils():
    if shutil.which("xenstore-read") is None:
        prereq.missing("Debian's xenstore-utils are not installed (make setup)")


@pytest.fixture
def xsd():
    # Unix socket paths are short (108 bytes): a short dir in /tmp.
    workdir = tempfile.mkdtemp(prefix="xs", dir="/tmp")
    d = Daemon(workdir, REPO)
    try:
        yield d
        assert d.alive(), "xenstored died:\n" + d.log_text()
        assert "internal error" not in d.log_text()
    finally:
        d.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def dom0(xsd):
    with xsd.client() as c:
        yield c


def err(fn, *args, **kw):
    with pytest.raises(XsError) as ei:
        fn(*args, **kw)
    return ei.value.code


# ---------------------------------------------------------------- Debian's tools, as dom0

def test_tools_write_read_list_ls_exists_rm(xsd):
    assert xsd.tool("xenstore-write", "/vm/a/name", "web", "/vm/a/port", "80").returncode == 0
    r = xsd.tool("xenstore-read", "/vm/a/name", "/vm/a/port")
    assert (r.returncode, r.stdout) == (0, "web\n80\n")
    assert xsd.tool("xenstore-list", "/vm/a").stdout.split() == ["name", "port"]
    ls = xsd.tool("xenstore-ls", "-f", "/vm")
    assert ls.returncode == 0
    assert '/vm/a/name = "web"' in ls.stdout and '/vm/a/port = "80"' in ls.stdout
    assert xsd.tool("xenstore-exists", "/vm/a/port").returncode == 0
    assert xsd.tool("xenstore-exists", "/vm/a/nope").returncode == 1
    assert xsd.tool("xenstore-rm", "/vm/a/port").returncode == 0
    assert xsd.tool("xenstore-exists", "/vm/a/port").returncode == 1
    missing = xsd.tool("xenstore-read", "/vm/a/port")
    assert missing.returncode == 1 and missing.stdout == ""
    # Relative paths of a socket (dom0) client are below /local/domain/0.
    assert xsd.tool("xenstore-write", "rel/key", "v").returncode == 0
    assert xsd.tool("xenstore-read", "/local/domain/0/rel/key").stdout == "v\n"


def test_tools_chmod_and_permissions_listing(xsd, dom0):
    xsd.tool("xenstore-write", "/perm/node", "x")
    r = xsd.tool("xenstore-chmod", "/perm/node", "n0", "r5", "b7")
    assert r.returncode == 0, r.stderr
    assert dom0.get_perms("/perm/node") == ["n0", "r5", "b7"]
    assert "(n0,r5,b7)" in xsd.tool("xenstore-ls", "-p", "/perm").stdout
    # -r: recursive
    xsd.tool("xenstore-write", "/perm/node/child", "y")
    assert xsd.tool("xenstore-chmod", "-r", "/perm", "b3").returncode == 0
    assert dom0.get_perms("/perm/node/child") == ["b3"]


def test_tools_list_a_directory_bigger_than_one_message(xsd, dom0):
    # 300 x 20-byte names: DIRECTORY would exceed 4096 bytes, so libxenstore gets E2BIG
    # and falls back to DIRECTORY_PART.
    names = ["child-%014d" % i for i in range(300)]
    tx = dom0.start()
    for n in names:
        dom0.write("/big/" + n, "1", tx)
    dom0.end(tx)
    assert err(dom0.ls, "/big") == "E2BIG"
    r = xsd.tool("xenstore-list", "/big")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == names


class LineReader(object):
    """Lines of a subprocess' stdout, read by a thread (no buffering surprises)."""

    def __init__(self, proc):
        self.proc = proc
        self.lines = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def get(self, n, timeout=5.0):
        out = []
        deadline = time.time() + timeout
        while len(out) < n:
            try:
                out.append(self.lines.get(timeout=max(0.01, deadline - time.time())))
            except queue.Empty:
                break
        return out


def watch_proc(xsd, path, domid=0):
    p = subprocess.Popen(["xenstore-watch", path], env=xsd.env(domid),
                         stdout=subprocess.PIPE, text=True)
    p.reader = LineReader(p)
    return p


def read_lines(proc, n, timeout=5.0):
    return proc.reader.get(n, timeout)


def stop_proc(proc):
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(5)
    proc.reader.thread.join(5)
    proc.stdout.close()


def test_tools_watch_prints_initial_then_descendant_events(xsd, dom0):
    dom0.write("/w/x", "1")
    p = watch_proc(xsd, "/w")
    try:
        assert read_lines(p, 1) == ["/w"]            # fired once straight away
        dom0.write("/w/x/y", "2")
        dom0.write("/elsewhere", "3")                 # not below /w: no event
        dom0.rm("/w/x")
        dom0.write("/w", "4")
        assert read_lines(p, 3) == ["/w/x/y", "/w/x", "/w"]
        assert read_lines(p, 1, timeout=0.5) == []
    finally:
        stop_proc(p)
    # The daemon drops the watch of the dead client.
    deadline = time.time() + 5
    while "dropped 1 watches" not in xsd.log_text() and time.time() < deadline:
        time.sleep(0.05)
    assert "dropped 1 watches" in xsd.log_text()


# ---------------------------------------------------------------- Debian's tools, as a guest

def test_tools_as_a_guest_through_its_socket(xsd, dom0):
    base = make_guest(dom0, 5)
    dom0.write("/secret", "s")
    dom0.write("/local/domain/6/data/x", "other guest")
    # XENSTORED_PATH pointing at the guest's socket: libxenstore connects to any Unix
    # socket it names; the daemon knows the domain from the socket.
    g = lambda *a: xsd.tool(*a, domid=5)  # noqa: E731
    assert g("xenstore-write", "data/greeting", "hi").returncode == 0   # relative
    assert dom0.read(base + "/data/greeting") == b"hi"
    assert g("xenstore-read", base + "/data/greeting").stdout == "hi\n"
    assert g("xenstore-read", "data/greeting").stdout == "hi\n"
    assert g("xenstore-list", "data").stdout.split() == ["greeting"]
    assert dom0.get_perms(base + "/data/greeting") == ["n5"]
    denied = g("xenstore-read", "/secret")
    assert (denied.returncode, denied.stdout) == (1, "")
    assert g("xenstore-read", "/local/domain/6/data/x").returncode == 1
    assert g("xenstore-write", "/local/domain/0/x", "no").returncode == 1
    assert g("xenstore-write", base + "/name", "no").returncode == 1  # base is n0,r5
    assert g("xenstore-chmod", "data/greeting", "n5", "r0").returncode == 0
    assert g("xenstore-chmod", "data/greeting", "n0").returncode == 1  # owner change
    assert g("xenstore-rm", "data/greeting").returncode == 0
    assert g("xenstore-exists", "data/greeting").returncode == 1


def test_tools_watch_as_a_guest_reports_relative_paths(xsd, dom0):
    make_guest(dom0, 5)
    p = watch_proc(xsd, "data", domid=5)
    try:
        assert read_lines(p, 1) == ["data"]
        dom0.write("/local/domain/5/data/k", "v")
        assert read_lines(p, 1) == ["data/k"]
    finally:
        stop_proc(p)


# ---------------------------------------------------------------- permissions

def test_guest_cannot_touch_dom0_or_other_guests(xsd, dom0):
    make_guest(dom0, 5)
    make_guest(dom0, 6)
    dom0.write("/local/domain/0/private", "p")
    dom0.write("/local/domain/6/data/x", "six")
    with xsd.client(5) as g5:
        assert err(g5.read, "/local/domain/0/private") == "EACCES"
        assert err(g5.write, "/local/domain/0/private", "x") == "EACCES"
        assert err(g5.write, "/local/domain/0/new", "x") == "EACCES"   # create: parent perms
        assert err(g5.mkdir, "/newtop") == "EACCES"
        assert err(g5.rm, "/local/domain/0/private") == "EACCES"
        assert err(g5.ls, "/local/domain/6/data") == "EACCES"
        assert err(g5.read, "/local/domain/6/data/x") == "EACCES"
        assert err(g5.write, "/local/domain/6/data/x", "y") == "EACCES"
        assert err(g5.get_perms, "/local/domain/6/data/x") == "EACCES"
        assert err(g5.set_perms, "/local/domain/6/data/x", ["b5"]) == "EACCES"
        # its own tree: base readable (r5), data owned
        assert g5.ls("/local/domain/5") == ["data"]
        assert err(g5.write, "/local/domain/5/name", "x") == "EACCES"
        g5.write("data/mine", "ok")
        # dom0-only requests
        assert err(g5.introduce, 9) == "EACCES"
        assert err(g5.release, 6) == "EACCES"
        assert err(g5.is_introduced, 6) == "EACCES"
    assert dom0.read("/local/domain/6/data/x") == b"six"
    assert dom0.read("/local/domain/0/private") == b"p"


def test_acl_entries_and_other_permission(xsd, dom0):
    for d in (5, 6, 7, 8):
        make_guest(dom0, d)
    dom0.write("/acl", "v")
    dom0.set_perms("/acl", ["n0", "r5", "w6", "b7"])
    dom0.write("/open", "v")
    dom0.set_perms("/open", ["r0"])          # others: read
    c = {d: xsd.client(d) for d in (5, 6, 7, 8)}
    try:
        assert c[5].read("/acl") == b"v"
        assert err(c[5].write, "/acl", "x") == "EACCES"
        assert err(c[6].read, "/acl") == "EACCES"
        c[6].write("/acl", "six")
        assert c[7].read("/acl") == b"six"
        c[7].write("/acl", "seven")
        assert err(c[8].read, "/acl") == "EACCES"
        assert err(c[8].write, "/acl", "x") == "EACCES"
        assert c[8].read("/open") == b"v"
        assert err(c[8].write, "/open", "x") == "EACCES"
        # The owner has full access whatever the permission letters say.
        dom0.set_perms("/acl", ["n8"])
        c[8].write("/acl", "eight")
        assert c[8].read("/acl") == b"eight"
        assert err(c[7].read, "/acl") == "EACCES"
    finally:
        for cl in c.values():
            cl.close()


def test_nodes_created_by_a_guest_are_owned_by_it(xsd, dom0):
    make_guest(dom0, 5)
    dom0.mkdir("/shared")
    dom0.set_perms("/shared", ["n0", "b5", "r6"])
    with xsd.client(5) as g:
        g.write("/shared/a/b", "1")                 # creates a and a/b
        # Inherit the parent's permissions, but the creating guest owns the node
        # (C xenstored construct_node).
        assert dom0.get_perms("/shared/a") == ["n5", "b5", "r6"]
        assert dom0.get_perms("/shared/a/b") == ["n5", "b5", "r6"]
        g.set_perms("/shared/a/b", ["n5"])          # it owns it: may change it
        g.write("data/x", "1")
        assert dom0.get_perms("/local/domain/5/data/x") == ["n5"]
    dom0.write("/shared/c", "dom0's")
    assert dom0.get_perms("/shared/c") == ["n0", "b5", "r6"]  # dom0: plain inheritance


def test_set_perms_refused_to_non_owner(xsd, dom0):
    make_guest(dom0, 5)
    make_guest(dom0, 6)
    dom0.write("/both", "v")
    dom0.set_perms("/both", ["n0", "b5", "b6"])
    with xsd.client(5) as g5, xsd.client(6) as g6:
        assert err(g5.set_perms, "/both", ["b5"]) == "EACCES"     # ACL b5 is not ownership
        g5.write("data/x", "1")
        assert err(g6.set_perms, "/local/domain/5/data/x", ["n6"]) == "EACCES"
        assert err(g5.set_perms, "data/x", ["n6"]) == "EACCES"    # giving it away: dom0 only
        assert err(g5.set_perms, "data/x", ["z5"]) == "EINVAL"
        assert err(g5.set_perms, "data/x", []) == "EINVAL"
        g5.set_perms("data/x", ["r5", "b6"])
        assert g6.read("/local/domain/5/data/x") == b"1"
        assert err(g6.set_perms, "/local/domain/5/data/x", ["r5"]) == "EACCES"
        assert err(g5.set_perms, "@releaseDomain", ["r5"]) == "EACCES"
    dom0.set_perms("/local/domain/5/data/x", ["n6"])                 # dom0 may
    assert dom0.get_perms("/local/domain/5/data/x") == ["n6"]


# ---------------------------------------------------------------- quotas

def test_value_size_limit(xsd, dom0):
    make_guest(dom0, 5)
    with xsd.client(5) as g:
        g.write("data/v", b"x" * 2048)
        assert err(g.write, "data/v", b"y" * 2049) == "E2BIG"
        assert err(g.write, "data/new", b"y" * 2049) == "E2BIG"
        assert g.read("data/v") == b"x" * 2048
        assert err(g.read, "data/new") == "ENOENT"
    # oxenstored applies the size limit to dom0 too.
    dom0.write("/v", b"z" * 2048)
    assert err(dom0.write, "/v", b"z" * 2049) == "E2BIG"
    assert "E2BIG" in xsd.log_text()
    # The tools see the same.
    assert xsd.tool("xenstore-write", "/v", "q" * 2049).returncode == 1


def test_node_quota_1000_per_guest(xsd, dom0):
    base = make_guest(dom0, 5)       # data/ is the guest's first node
    with xsd.client(5) as g:
        for i in range(997):
            g.write("data/n%d" % i, "1")
        # 998 owned; a write that would create 3 nodes is refused whole
        assert err(g.write, "data/p/q/r", "1") == "EQUOTA"
        assert err(g.read, "data/p") == "ENOENT"
        listing = xsd.tool("xenstore-list", "data", domid=5)   # > 4096 bytes: DIRECTORY_PART
        assert listing.stdout.split() == ["n%d" % i for i in range(997)]
        g.write("data/p/q", "1")     # 2 nodes: 1000 owned
        assert err(g.write, "data/one-too-many", "1") == "EQUOTA"
        assert err(g.mkdir, "data/one-too-many") == "EQUOTA"
        assert err(g.read, "data/one-too-many") == "ENOENT"
        g.write("data/n0", "changing a value creates nothing")
        tx = g.start()
        assert err(g.write, "data/in-tx", "1", tx) == "EQUOTA"
        g.end(tx, False)
        g.rm("data/n1")                # frees one
        g.write("data/again", "1")
        assert err(g.write, "data/again2", "1") == "EQUOTA"
    # dom0 is not limited, even in the guest's tree.
    dom0.write(base + "/data/from-dom0", "1")
    dom0.write("/local/domain/0/many", "1")
    assert "EQUOTA" in xsd.log_text()


def test_watch_quota_100_per_guest_connection(xsd, dom0):
    make_guest(dom0, 5)
    with xsd.client(5) as g, xsd.client(5) as g2:
        for i in range(100):
            g.watch("data/w%d" % i, "t")
        assert err(g.watch, "data/w100", "t") == "EQUOTA"
        g.unwatch("data/w0", "t")
        g.watch("data/w100", "t")
        assert err(g.watch, "data/w101", "t") == "EQUOTA"
        g2.watch("data/other", "t")               # per connection
    for i in range(150):
        dom0.watch("/d0/w%d" % i, "t")


def test_transaction_quota_10_per_guest_connection(xsd, dom0):
    make_guest(dom0, 5)
    with xsd.client(5) as g:
        txs = [g.start() for _ in range(10)]
        assert len(set(txs)) == 10
        assert err(g.start) == "EQUOTA"
        g.end(txs[0], False)
        g.start()
        assert err(g.start) == "EQUOTA"
    for _ in range(20):
        dom0.start()


def test_oversized_message_drops_only_that_client(xsd, dom0):
    dom0.write("/keep", "1")
    c = xsd.client()
    c.send_raw(struct.pack("<IIII", X.WRITE, 1, 0, 4097) + b"/x\0" + b"a" * 4094)
    assert c.is_closed()
    c.close()
    # exactly 4096 bytes is a legal message (here refused for the value's size only)
    big = b"/keep\0" + b"b" * (4096 - 6)
    assert dom0.call_raw(X.WRITE, big)[2] == b"E2BIG\0"
    assert dom0.read("/keep") == b"1"
    assert "message length 4097 > 4096" in xsd.log_text()


# ---------------------------------------------------------------- watches

def test_watch_initial_event_descendants_and_rm(xsd, dom0):
    with xsd.client() as w:
        w.watch("/a", "tok-a")
        assert w.wait_event() == ("/a", "tok-a")      # even though /a does not exist
        w.watch("/a/b/c", "tok-c")
        assert w.wait_event() == ("/a/b/c", "tok-c")
        dom0.write("/a/b/c", "1")                      # creates /a, /a/b, /a/b/c
        assert sorted(w.drain_events()) == [("/a/b/c", "tok-a"), ("/a/b/c", "tok-c")]
        dom0.mkdir("/a/b/d")
        assert w.drain_events() == [("/a/b/d", "tok-a")]
        dom0.mkdir("/a/b/d")                           # already there: no change
        dom0.set_perms("/a/b/d", ["n0", "r1"])
        assert w.drain_events() == [("/a/b/d", "tok-a")]
        dom0.write("/ab", "1")                         # a sibling with a common prefix
        assert w.drain_events() == []
        # rm of an ancestor: the ancestor's watch sees the removed path, the watch below
        # sees its own path.
        dom0.rm("/a/b")
        assert sorted(w.drain_events()) == [("/a/b", "tok-a"), ("/a/b/c", "tok-c")]
        dom0.rm("/a/b")                                # nothing left: no event
        assert w.drain_events() == []
        w.unwatch("/a", "tok-a")
        assert err(w.unwatch, "/a", "tok-a") == "ENOENT"
        dom0.write("/a/z", "1")
        assert w.drain_events() == []
        assert err(w.watch, "/a/b/c", "tok-c") == "EEXIST"
        w.watch("/a/b/c", "another-token")
        assert w.wait_event() == ("/a/b/c", "another-token")


def test_relative_watch_reports_relative_paths(xsd, dom0):
    make_guest(dom0, 5)
    with xsd.client(5) as g:
        g.watch("data", "rel")
        g.watch("/local/domain/5/data", "abs")
        assert sorted(g.drain_events()) == [("/local/domain/5/data", "abs"), ("data", "rel")]
        g.write("data/x/y", "1")
        assert sorted(g.drain_events()) == [("/local/domain/5/data/x/y", "abs"),
                                            ("data/x/y", "rel")]
    with xsd.client() as d:                           # dom0: relative to /local/domain/0
        d.watch("mine", "t")
        assert d.wait_event() == ("mine", "t")
        d.write("/local/domain/0/mine/k", "1")
        assert d.wait_event() == ("mine/k", "t")


def test_guest_gets_events_only_for_nodes_it_may_read(xsd, dom0):
    make_guest(dom0, 5)
    dom0.mkdir("/pub")
    dom0.set_perms("/pub", ["n0", "r5"])
    dom0.mkdir("/priv")
    with xsd.client(5) as g:
        g.watch("/", "root")
        assert g.wait_event() == ("/", "root")
        dom0.write("/priv/x", "secret")               # /priv/x and /priv: n0
        assert g.drain_events() == []
        dom0.write("/pub/x", "1")                     # parent /pub readable
        assert g.drain_events() == [("/pub/x", "root")]
        dom0.write("/local/domain/5/data/y", "1")
        assert g.drain_events() == [("/local/domain/5/data/y", "root")]
        dom0.set_perms("/pub/x", ["n0"])              # old perms count: still told
        assert g.drain_events() == [("/pub/x", "root")]
        dom0.rm("/priv")
        assert g.drain_events() == []
        dom0.rm("/pub")                               # was readable: told
        assert g.drain_events() == [("/pub", "root")]


def test_special_watches_introduce_and_release(xsd, dom0):
    with xsd.client() as w, xsd.client() as other:
        w.watch("@introduceDomain", "intro")
        w.watch("@releaseDomain", "rel")
        assert sorted(w.drain_events()) == [("@introduceDomain", "intro"),
                                            ("@releaseDomain", "rel")]
        make_guest(dom0, 5)
        make_guest(dom0, 6)
        assert w.drain_events() == [("@introduceDomain", "intro")] * 2
        with xsd.client(5) as g:
            # A guest may set the watch and gets the initial event, but (XSA-115) no
            # special events unless dom0 lets it read the special node.
            g.watch("@releaseDomain", "g")
            assert g.wait_event() == ("@releaseDomain", "g")
            other.release(6)
            assert w.drain_events() == [("@releaseDomain", "rel")]
            assert g.drain_events() == []
            dom0.set_perms("@releaseDomain", ["n0", "r5"])
            assert dom0.get_perms("@releaseDomain") == ["n0", "r5"]
            make_guest(dom0, 7)
            other.release(7)
            assert g.drain_events() == [("@releaseDomain", "g")]
        assert err(w.watch, "@bad.name", "t") == "EINVAL"
        assert err(dom0.read, "@releaseDomain") == "EINVAL"


# ---------------------------------------------------------------- transactions

def test_transaction_isolation_and_commit(xsd, dom0):
    dom0.mkdir("/t")
    with xsd.client() as w:
        w.watch("/t", "t")
        w.drain_events()
        tx = dom0.start()
        dom0.write("/t/a", "1", tx)
        dom0.write("/t/b", "2", tx)
        assert dom0.read("/t/a", tx) == b"1"               # own writes
        assert dom0.ls("/t", tx) == ["a", "b"]
        with xsd.client() as other:
            assert err(other.read, "/t/a") == "ENOENT"     # invisible outside
            other.write("/unrelated", "z")
        assert w.drain_events() == []                      # nothing fires before commit
        dom0.end(tx)
        assert dom0.read("/t/a") == b"1" and dom0.read("/t/b") == b"2"
        assert sorted(w.drain_events()) == [("/t/a", "t"), ("/t/b", "t")]
        assert err(dom0.end, tx) == "ENOENT"               # gone after END


def test_transaction_sees_a_snapshot_and_conflicts_give_eagain(xsd, dom0):
    dom0.write("/snap", "old")
    tx = dom0.start()
    dom0.write("/snap", "new")                             # outside, after the start
    assert dom0.read("/snap", tx) == b"old"
    dom0.write("/mine", "1", tx)
    assert err(dom0.end, tx) == "EAGAIN"                   # it read a changed node
    assert err(dom0.read, "/mine") == "ENOENT"
    # write/write conflict
    tx = dom0.start()
    dom0.write("/c", "tx", tx)
    dom0.write("/c", "outside")
    assert err(dom0.end, tx) == "EAGAIN"
    assert dom0.read("/c") == b"outside"
    # changes elsewhere do not conflict
    tx = dom0.start()
    dom0.write("/c", "tx", tx)
    dom0.write("/elsewhere", "x")
    dom0.end(tx)
    assert dom0.read("/c") == b"tx"


def test_transaction_abort_and_errors(xsd, dom0):
    tx = dom0.start()
    dom0.write("/aborted", "1", tx)
    dom0.end(tx, commit=False)
    assert err(dom0.read, "/aborted") == "ENOENT"
    assert err(dom0.read, "/x", tx=12345) == "ENOENT"        # no such transaction
    assert err(dom0.end, 12345) == "ENOENT"
    tx = dom0.start()
    assert dom0.call_raw(X.TRANSACTION_START, b"\0", tx)[2] == b"EBUSY\0"
    assert dom0.call_raw(X.TRANSACTION_END, b"X\0", tx)[2] == b"EINVAL\0"
    # replies echo the request's tx_id
    assert dom0.call_raw(X.GET_DOMAIN_PATH, b"3\0", tx)[1] == tx
    dom0.end(tx)


def test_disconnect_mid_transaction_cleans_up(xsd, dom0):
    make_guest(dom0, 5)
    g = xsd.client(5)
    txs = [g.start() for _ in range(10)]
    g.write("data/half", "1", txs[0])
    g.watch("data", "w")
    g.close()
    deadline = time.time() + 5
    while "dropped 1 watches, 10 transactions" not in xsd.log_text():
        assert time.time() < deadline, xsd.log_text()
        time.sleep(0.05)
    assert err(dom0.read, "/local/domain/5/data/half") == "ENOENT"
    with xsd.client(5) as g2:
        assert err(g2.read, "data/x", tx=txs[0]) == "ENOENT"   # not its transaction
        for _ in range(10):
            g2.start()


# ---------------------------------------------------------------- domains

def test_introduce_release_lifecycle(xsd, dom0):
    assert dom0.domain_path(7) == "/local/domain/7"
    assert not dom0.is_introduced(7)
    assert dom0.is_introduced(0)
    assert not os.path.exists(xsd.guest_sock(7))
    dom0.introduce(7, mfn=1234, port=5)
    assert os.path.exists(xsd.guest_sock(7))
    assert dom0.is_introduced(7)
    dom0.introduce(7, mfn=1234, port=5)                   # same again: fine
    assert err(dom0.introduce, 7, 999, 5) == "EINVAL"     # differently: refused
    assert err(dom0.introduce, 0) == "EINVAL"
    assert err(dom0.introduce, "x") == "EINVAL"
    dom0.mkdir("/local/domain/7")
    dom0.set_perms("/local/domain/7", ["n7"])
    dom0.write("/shared", "1")
    dom0.set_perms("/shared", ["n0", "r7", "r8"])
    g = xsd.client(7)
    assert g.domain_path(7) == "/local/domain/7"
    g.write("x", "1")
    g.watch("x", "t")
    dom0.release(7)
    assert g.is_closed()
    g.close()
    assert not os.path.exists(xsd.guest_sock(7))
    assert not dom0.is_introduced(7)
    with pytest.raises(OSError):
        xsd.client(7)
    # oxenstored (XSA-322/419): nodes owned by the domain go, its ACL entries too.
    assert err(dom0.read, "/local/domain/7") == "ENOENT"
    assert dom0.get_perms("/shared") == ["n0", "r8"]
    assert err(dom0.release, 7) == "EINVAL"
    assert "RELEASE domain 7" in xsd.log_text()
    # a new domain with the same id starts afresh
    dom0.introduce(7)
    with xsd.client(7) as g:
        assert err(g.read, "x") == "ENOENT"


def test_release_closes_every_connection_of_the_domain_only(xsd, dom0):
    make_guest(dom0, 5)
    make_guest(dom0, 6)
    a, b, c = xsd.client(5), xsd.client(5), xsd.client(6)
    try:
        dom0.release(5)
        assert a.is_closed() and b.is_closed()
        assert c.read("/local/domain/6/data") == b""
    finally:
        for cl in (a, b, c):
            cl.close()


# ---------------------------------------------------------------- paths and errors

def test_path_validation_and_rm_rules(xsd, dom0):
    for bad in ["/a/", "/a//b", "", "a b", "/a.b", "/\u00e9", "@x"]:
        assert err(dom0.read, bad) == "EINVAL", bad
    assert err(dom0.write, "/a.b", "x") == "EINVAL"
    # length: 2048 chars below a domain's home (or of the whole path elsewhere)
    ok = "/local/domain/3/" + "k" * 2048
    dom0.write(ok, "1")
    assert err(dom0.write, ok + "k", "1") == "EINVAL"
    dom0.write("/" + "p" * 2047, "1")
    assert err(dom0.write, "/" + "p" * 2048, "1") == "EINVAL"
    assert err(dom0.rm, "/") == "EINVAL"
    dom0.write("/r/x", "1")
    dom0.rm("/r/nothing")                     # parent exists: fine
    assert err(dom0.rm, "/nothing/at/all") == "ENOENT"
    dom0.rm("/r")
    assert err(dom0.read, "/r/x") == "ENOENT"
    assert dom0.read("/") == b""
    assert dom0.get_perms("/") == ["n0"]


def test_malformed_requests_get_errors(xsd, dom0):
    assert dom0.call_raw(X.READ, b"/a")[2] == b"EINVAL\0"           # no nul
    assert dom0.call_raw(X.READ, b"/a\0/b\0")[2] == b"EINVAL\0"     # two args
    assert dom0.call_raw(X.WRITE, b"/nonul")[2] == b"EINVAL\0"
    assert dom0.call_raw(X.WATCH, b"/a\0")[2] == b"EINVAL\0"
    assert dom0.call_raw(X.SET_PERMS, b"/\0")[2] == b"EINVAL\0"
    for op in (X.WATCH_EVENT, X.ERROR, X.SET_TARGET, X.RESTRICT, 99, 0xFFFF):
        assert dom0.call_raw(op, b"x\0")[0] == X.ERROR
        assert dom0.call_raw(op, b"x\0")[2] == b"ENOSYS\0", op
    dom0.write("/bin", b"\x00\x01\xff")                              # binary values are fine
    assert dom0.read("/bin") == b"\x00\x01\xff"


def test_garbage_and_truncated_input_do_not_disturb_others(xsd, dom0):
    dom0.write("/alive", "yes")
    with xsd.client() as w:
        w.watch("/alive", "t")
        w.drain_events()
        rnd = random.Random(1234)
        for i in range(40):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(xsd.sock)
            kind = i % 4
            if kind == 0:
                s.sendall(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 3000))))
            elif kind == 1:
                s.sendall(struct.pack("<IIII", X.READ, 1, 0, 100)[:rnd.randint(1, 15)])
            elif kind == 2:
                s.sendall(struct.pack("<IIII", X.WRITE, 1, 0, 100) + b"/alive\0par")
            else:
                # a valid header with a random small payload and type
                payload = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 64)))
                s.sendall(struct.pack("<IIII", rnd.randint(0, 30), 7, rnd.choice([0, 1, 99]),
                                      len(payload)) + payload)
                s.settimeout(2)
                hdr = s.recv(16)
                assert len(hdr) == 16
            s.close()
        assert dom0.read("/alive") == b"yes"
        dom0.write("/alive", "still")
        assert w.wait_event() == ("/alive", "t")
    assert xsd.tool("xenstore-read", "/alive").stdout == "still\n"


def test_many_clients_and_throughput(xsd, dom0):
    n_clients, n_ops = 50, 100
    clients = [xsd.client() for _ in range(n_clients)]
    errors = []

    def run(i, c):
        try:
            for j in range(n_ops):
                c.write("/load/c%d/k%d" % (i, j % 10), "v%d" % j)
                assert c.read("/load/c%d/k%d" % (i, j % 10)) == ("v%d" % j).encode()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    t0 = time.time()
    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    elapsed = time.time() - t0
    for c in clients:
        c.close()
    assert not errors, errors[:3]
    msgs = n_clients * n_ops * 2
    assert msgs / elapsed > 1000, "%d msgs in %.2fs" % (msgs, elapsed)
    assert len(dom0.ls("/load")) == n_clients


def test_slow_reader_does_not_block_others(xsd, dom0):
    slow = xsd.client()
    slow.watch("/flood", "t")            # never reads its events
    for i in range(3000):
        dom0.write("/flood/k%d" % (i % 50), "x" * 100)
    assert dom0.read("/flood/k1") == b"x" * 100
    slow.close()


# ---------------------------------------------------------------- process life cycle

def test_sigterm_removes_the_sockets():
    workdir = tempfile.mkdtemp(prefix="xs", dir="/tmp")
    try:
        xsd = Daemon(workdir, REPO)
        with xsd.client() as dom0:
            dom0.introduce(5)
            dom0.introduce(6)
            guest = xsd.client(5)
        assert os.path.exists(xsd.guest_sock(5))
        assert xsd.stop() == 0
        assert guest.is_closed()
        guest.close()
        assert not os.path.exists(xsd.sock)
        assert not os.path.exists(xsd.guest_sock(5))
        assert not os.path.exists(xsd.guest_sock(6))
        assert not os.path.exists(xsd.guest_dir)   # it made the directory: it removes it
        assert os.listdir(workdir) == ["log"]
        assert "signal 15: stopping" in xsd.log_text()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_in_process_daemon_in_a_thread():
    from lab.xenstored import XenstoreDaemon
    workdir = tempfile.mkdtemp(prefix="xs", dir="/tmp")
    try:
        d = XenstoreDaemon(os.path.join(workdir, "s"), os.path.join(workdir, "g"),
                           os.path.join(workdir, "log")).start()
        with Client(os.path.join(workdir, "s")) as c:
            c.write("/x", "1")
            assert c.read("/x") == b"1"
            c.introduce(4)
        assert os.path.exists(os.path.join(workdir, "g", "4"))
        d.stop()
        assert sorted(os.listdir(workdir)) == ["log"]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------- property tests

def _model_apply(model, op, path, value):
    """Reference semantics of xenstore.txt on a dict {path: [value, [children]]}."""
    def parent(p):
        return p.rsplit("/", 1)[0] or "/"

    def create(p, v):
        chain = []
        q = p
        while q not in model:
            chain.append(q)
            q = parent(q)
        for q in reversed(chain):
            model[parent(q)][1].append(q.rsplit("/", 1)[1])
            model[q] = [b"", []]
        model[p][0] = v

    if op == "write":
        if path in model:
            model[path][0] = value
        else:
            create(path, value)
        return b"OK"
    if op == "mkdir":
        if path not in model:
            create(path, b"")
        return b"OK"
    if op == "rm":
        if path not in model:
            return b"OK" if parent(path) in model else "ENOENT"
        for q in [q for q in model if q == path or q.startswith(path + "/")]:
            del model[q]
        model[parent(path)][1].remove(path.rsplit("/", 1)[1])
        return b"OK"
    if op == "read":
        return model[path][0] if path in model else "ENOENT"
    if op == "ls":
        return list(model[path][1]) if path in model else "ENOENT"
    raise AssertionError(op)


def test_tree_operations_match_a_reference_model():
    from hypothesis import given, settings, strategies as st, HealthCheck

    workdir = tempfile.mkdtemp(prefix="xs", dir="/tmp")
    d = Daemon(workdir, REPO)
    counter = [0]
    segs = st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=4)
    ops = st.lists(st.tuples(st.sampled_from(["write", "mkdir", "rm", "read", "ls"]), segs,
                             st.binary(max_size=8)), max_size=30)
    try:
        c = d.client()

        @settings(max_examples=80, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow])
        @given(ops, st.booleans())
        def check(seq, in_tx):
            counter[0] += 1
            root = "/h%d" % counter[0]
            c.mkdir(root)
            model = {root: [b"", []]}
            tx = c.start() if in_tx else 0
            for op, parts, value in seq:
                path = root + "/" + "/".join(parts)
                expected = _model_apply(model, op, path, value)
                try:
                    if op == "ls":
                        got = c.ls(path, tx)
                    elif op == "read":
                        got = c.read(path, tx)
                    else:
                        getattr(c, op)(*((path, value) if op == "write" else (path,)), tx=tx)
                        got = b"OK"
                except XsError as e:
                    got = e.code
                assert got == expected, (op, path)
            if tx:
                c.end(tx)
            for path, (value, children) in model.items():
                assert c.read(path) == value
                assert c.ls(path) == children

        check()
        assert d.alive()
    finally:
        d.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def test_random_requests_always_get_a_well_formed_reply():
    from hypothesis import given, settings, strategies as st, HealthCheck

    workdir = tempfile.mkdtemp(prefix="xs", dir="/tmp")
    d = Daemon(workdir, REPO)
    words = st.sampled_from([b"", b"/", b"/a", b"a/b", b"@releaseDomain", b"T", b"F", b"7",
                             b"b0", b"r5", b"\xff", b"//", b"/a/", b"x" * 300])
    payloads = st.lists(words, max_size=4).map(lambda ws: b"\0".join(ws)) | st.binary(
        max_size=200)
    try:
        c = d.client()

        @settings(max_examples=300, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow])
        @given(st.integers(0, 30), st.sampled_from([0, 1, 2, 77]), payloads,
               st.booleans())
        def check(op, tx, payload, nul):
            if nul:
                payload += b"\0"
            rop, rtx, body = c.call_raw(op, payload, tx)
            assert rtx == tx
            assert rop in (op, X.ERROR)
            if rop == X.ERROR:
                assert body.endswith(b"\0") and body[:1] == b"E"

        check()
        assert d.alive()
        assert "internal error" not in d.log_text()
        with d.client() as other:
            other.write("/still", "fine")
            assert other.read("/still") == b"fine"
    finally:
        d.stop()
        shutil.rmtree(workdir, ignore_errors=True)
