"""A small test-only xenstore client (wire protocol of Xen's docs/misc/xenstore.txt) for
what the xenstore-* tools cannot do: transactions, many watches, raw and garbage input."""
import os
import select
import socket
import struct
import subprocess
import sys
import time

HEADER = struct.Struct("<IIII")

DIRECTORY, READ, GET_PERMS, WATCH, UNWATCH = 1, 2, 3, 4, 5
TRANSACTION_START, TRANSACTION_END, INTRODUCE, RELEASE, GET_DOMAIN_PATH = 6, 7, 8, 9, 10
WRITE, MKDIR, RM, SET_PERMS, WATCH_EVENT, ERROR = 11, 12, 13, 14, 15, 16
IS_DOMAIN_INTRODUCED, RESUME, SET_TARGET, RESTRICT, RESET_WATCHES, DIRECTORY_PART = (
    17, 18, 19, 20, 21, 22)


class XsError(Exception):
    def __init__(self, code):
        Exception.__init__(self, code)
        self.code = code


class Closed(Exception):
    pass


class Client(object):
    def __init__(self, path, timeout=5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.rid = 0
        self.events = []   # (path, token) received while waiting for replies
        self._buf = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- raw wire access
    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, op, payload, tx=0, rid=None):
        if rid is None:
            self.rid += 1
            rid = self.rid
        self.sock.sendall(HEADER.pack(op, rid, tx, len(payload)) + payload)
        return rid

    def _recv_exact(self, n):
        while len(self._buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed("xenstored closed the connection")
            self._buf += chunk
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def recv_msg(self):
        op, rid, tx, length = HEADER.unpack(self._recv_exact(HEADER.size))
        return op, rid, tx, self._recv_exact(length)

    def call_raw(self, op, payload, tx=0):
        """-> (reply type, reply header tx, payload); queues watch events seen meanwhile."""
        rid = self.send(op, payload, tx)
        while True:
            rop, rrid, rtx, body = self.recv_msg()
            if rop == WATCH_EVENT:
                self.events.append(_event(body))
                continue
            assert rrid == rid, (rrid, rid)
            return rop, rtx, body

    def call(self, op, payload, tx=0):
        rop, _, body = self.call_raw(op, payload, tx)
        if rop == ERROR:
            raise XsError(body.rstrip(b"\0").decode())
        assert rop == op, (rop, op)
        return body

    # -- operations
    def read(self, path, tx=0):
        return self.call(READ, _b(path) + b"\0", tx)

    def write(self, path, value, tx=0):
        return self.call(WRITE, _b(path) + b"\0" + _b(value), tx)

    def mkdir(self, path, tx=0):
        return self.call(MKDIR, _b(path) + b"\0", tx)

    def rm(self, path, tx=0):
        return self.call(RM, _b(path) + b"\0", tx)

    def ls(self, path, tx=0):
        body = self.call(DIRECTORY, _b(path) + b"\0", tx)
        return [x.decode() for x in body.split(b"\0")[:-1]]

    def get_perms(self, path, tx=0):
        body = self.call(GET_PERMS, _b(path) + b"\0", tx)
        return [x.decode() for x in body.split(b"\0")[:-1]]

    def set_perms(self, path, perms, tx=0):
        return self.call(SET_PERMS, _b(path) + b"\0" + b"".join(_b(p) + b"\0" for p in perms),
                         tx)

    def watch(self, path, token):
        return self.call(WATCH, _b(path) + b"\0" + _b(token) + b"\0")

    def unwatch(self, path, token):
        return self.call(UNWATCH, _b(path) + b"\0" + _b(token) + b"\0")

    def start(self):
        return int(self.call(TRANSACTION_START, b"\0").rstrip(b"\0"))

    def end(self, tx, commit=True):
        return self.call(TRANSACTION_END, b"T\0" if commit else b"F\0", tx)

    def introduce(self, domid, mfn=0, port=0):
        return self.call(INTRODUCE, ("%s\0%s\0%s\0" % (domid, mfn, port)).encode())

    def release(self, domid):
        return self.call(RELEASE, ("%s\0" % domid).encode())

    def domain_path(self, domid):
        return self.call(GET_DOMAIN_PATH, ("%s\0" % domid).encode()).rstrip(b"\0").decode()

    def is_introduced(self, domid):
        return self.call(IS_DOMAIN_INTRODUCED, ("%s\0" % domid).encode()) == b"T\0"

    # -- watch events
    def wait_event(self, timeout=2.0):
        """The next watch event (path, token), or None after ``timeout``."""
        if self.events:
            return self.events.pop(0)
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                return None
            if not self._buf:
                r, _, _ = select.select([self.sock], [], [], left)
                if not r:
                    return None
            op, _, _, body = self.recv_msg()
            if op == WATCH_EVENT:
                return _event(body)

    def drain_events(self, quiet=0.2):
        """All events that arrive until none comes for ``quiet`` seconds."""
        out = []
        while True:
            ev = self.wait_event(quiet)
            if ev is None:
                return out
            out.append(ev)

    def is_closed(self, timeout=2.0):
        """True if the daemon closed this connection."""
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return False
        try:
            return self.sock.recv(65536) == b""
        except OSError:
            return True


def _b(x):
    return x if isinstance(x, bytes) else x.encode()


def _event(body):
    parts = body.split(b"\0")
    return parts[0].decode(), parts[1].decode()


# ---------------------------------------------------------------- the daemon as a process

class Daemon(object):
    """``python -m lab.xenstored`` in a subprocess, with its sockets in a short temp dir."""

    def __init__(self, workdir, cwd):
        self.dir = workdir
        self.sock = os.path.join(workdir, "s")
        self.guest_dir = os.path.join(workdir, "g")
        self.log = os.path.join(workdir, "log")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lab.xenstored", "--dom0-socket", self.sock,
             "--guest-socket-dir", self.guest_dir, "--log", self.log],
            cwd=cwd, stdin=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                Client(self.sock).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("xenstored did not start")
                time.sleep(0.02)

    def guest_sock(self, domid):
        return os.path.join(self.guest_dir, str(domid))

    def client(self, domid=0):
        return Client(self.sock if domid == 0 else self.guest_sock(domid))

    def env(self, domid=0):
        env = dict(os.environ)
        env["XENSTORED_PATH"] = self.sock if domid == 0 else self.guest_sock(domid)
        return env

    def tool(self, *args, **kw):
        """Run a Debian xenstore-* tool; returns CompletedProcess (text)."""
        domid = kw.pop("domid", 0)
        return subprocess.run(list(args), env=self.env(domid), capture_output=True,
                              text=True, timeout=20, **kw)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, 15)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, 9)
                self.proc.wait(5)
        return self.proc.returncode

    def log_text(self):
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""


def make_guest(xs, domid, owned=("data",)):
    """What the toolstack does: /local/domain/<domid> readable by the guest, some subtrees
    owned by it, then INTRODUCE. ``xs`` is a dom0 Client."""
    base = "/local/domain/%d" % domid
    xs.mkdir(base)
    xs.set_perms(base, ["n0", "r%d" % domid])
    for sub in owned:
        xs.mkdir(base + "/" + sub)
        xs.set_perms(base + "/" + sub, ["n%d" % domid])
    xs.introduce(domid)
    return base
