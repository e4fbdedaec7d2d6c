"""A xenstore wire-protocol client (Xen's docs/misc/xenstore.txt).

One code path for every place xenstore is reached: a guest's ``/dev/xen/xenbus``
(a character device, read and written as raw frames) and dom0's xenstored Unix socket
(``/run/xenstored/socket``, or ``XENSTORED_PATH``); the lab's per-guest sockets speak the
same frames. The kind is chosen by ``stat`` on the path.

Every message is a 16-byte little-endian header ``type, req_id, tx_id, len`` and ``len``
bytes of payload (at most 4096). Replies longer than that are a protocol error: nothing
is ever read without bound. Every call has a deadline; a call that timed out leaves the
connection closed (a late reply would be mistaken for the next one).

Watch events arrive between replies; they are queued (bounded: they are hints that
something changed, so the oldest are dropped on overflow) and handed out by
``wait_event``. A Client may be shared by threads: one request is on the wire at a time.

Python 3.6 compatible, stdlib only (dom0 imports it).
"""

import collections
import errno
import os
import select
import socket
import stat
import struct
import threading
import time

HEADER = struct.Struct("<IIII")
PAYLOAD_MAX = 4096
DEFAULT_TIMEOUT = 10.0
EVENT_QUEUE_MAX = 1024

DOM0_SOCKET = "/run/xenstored/socket"
GUEST_DEVICE = "/dev/xen/xenbus"

XS_DIRECTORY = 1
XS_READ = 2
XS_GET_PERMS = 3
XS_WATCH = 4
XS_UNWATCH = 5
XS_TRANSACTION_START = 6
XS_TRANSACTION_END = 7
XS_WRITE = 11
XS_MKDIR = 12
XS_RM = 13
XS_SET_PERMS = 14
XS_WATCH_EVENT = 15
XS_ERROR = 16

_OP_NAMES = {
    XS_DIRECTORY: "directory", XS_READ: "read", XS_GET_PERMS: "get_perms",
    XS_WATCH: "watch", XS_UNWATCH: "unwatch", XS_TRANSACTION_START: "transaction_start",
    XS_TRANSACTION_END: "transaction_end", XS_WRITE: "write", XS_MKDIR: "mkdir",
    XS_RM: "rm", XS_SET_PERMS: "set_perms",
}

_PATH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                        "0123456789-/_@")
PATH_MAX = 3072

WatchEvent = collections.namedtuple("WatchEvent", "path token")


class XenstoreError(Exception):
    """A failed xenstore operation. ``code`` is the errno name (``ENOENT``, ``EACCES``,
    ``EQUOTA``, ``E2BIG``, ``EAGAIN``...), ``op`` and ``path`` say what was asked."""

    def __init__(self, code, op="", path="", detail=""):
        self.code = code
        self.op = op
        self.path = path
        self.detail = detail
        text = code
        if op:
            text = "%s %s: %s" % (op, path, code) if path else "%s: %s" % (op, code)
        if detail:
            text += " (%s)" % detail
        Exception.__init__(self, text)


class ConnectionLost(XenstoreError):
    """The connection is closed or broken: open a new Client."""

    def __init__(self, detail, op="", path=""):
        XenstoreError.__init__(self, "ECONNRESET", op, path, detail)


class XenstoreTimeout(XenstoreError):
    """No complete reply in time; the connection was closed."""

    def __init__(self, op="", path="", seconds=0.0):
        XenstoreError.__init__(self, "ETIMEDOUT", op, path,
                               "no reply within %.1f s" % seconds)


def default_path():
    """Where xenstore is: ``XENSTORED_PATH``, dom0's socket, else the guest device."""
    env = os.environ.get("XENSTORED_PATH")
    if env:
        return env
    if os.path.exists(DOM0_SOCKET):
        return DOM0_SOCKET
    return GUEST_DEVICE


def check_path(path):
    """Raise XenstoreError(EINVAL) unless ``path`` is a valid xenstore path (a str of
    ``[A-Za-z0-9-/_@]``, not empty, not too long)."""
    if (not isinstance(path, str) or not path or len(path) > PATH_MAX
            or not _PATH_CHARS.issuperset(path)):
        shown = repr(path)[:60]
        raise XenstoreError("EINVAL", "path", shown, "not a valid xenstore path")
    return path


class _SocketStream(object):
    def __init__(self, path, timeout):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(path)
            self.sock.setblocking(False)
        except BaseException:
            self.sock.close()
            raise

    def fileno(self):
        return self.sock.fileno()

    def send(self, data):
        return self.sock.send(data)

    def recv(self, size):
        return self.sock.recv(size)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class _DeviceStream(object):
    """/dev/xen/xenbus: the kernel driver takes whole frames on write and hands back
    replies and watch events on read."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))

    def fileno(self):
        return self.fd

    def send(self, data):
        return os.write(self.fd, data)

    def recv(self, size):
        return os.read(self.fd, size)

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _open_stream(path, timeout):
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise ConnectionLost("cannot reach xenstore at %s: %s" % (path, error.strerror))
    try:
        if stat.S_ISCHR(mode):
            return _DeviceStream(path)
        if stat.S_ISSOCK(mode):
            return _SocketStream(path, timeout)
    except (OSError, socket.timeout) as error:
        raise ConnectionLost("cannot connect to xenstore at %s: %s" % (path, error))
    raise ConnectionLost("%s is neither a xenbus device nor a xenstored socket" % path)


class Client(object):
    """A connection to xenstore. ``path``: device or socket (default: default_path()).
    ``timeout``: seconds allowed for each call."""

    def __init__(self, path=None, timeout=DEFAULT_TIMEOUT):
        self.path = path or default_path()
        self.timeout = timeout
        self._stream = _open_stream(self.path, timeout)
        self._lock = threading.RLock()
        self._buf = bytearray()
        self._req = 0
        self._events = collections.deque(maxlen=EVENT_QUEUE_MAX)
        self._events_lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            _set_nonblocking(fd)
        self._woken = False
        self._broken = None
        self.dropped_events = 0

    # -- life cycle ------------------------------------------------------------------
    def close(self):
        """Close the connection (a thread blocked in wait_event returns)."""
        with self._events_lock:
            if self._broken is None:
                self._broken = "closed"
        self.wake()
        with self._lock:
            if self._stream is not None:
                self._stream.close()
                self._stream = None
        for attr in ("_wake_r", "_wake_w"):
            fd = getattr(self, attr)
            if fd is not None:
                setattr(self, attr, None)
                try:
                    os.close(fd)
                except OSError:
                    pass

    @property
    def closed(self):
        return self._broken is not None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _fail(self, why):
        """Close the stream after a protocol problem; later calls raise ConnectionLost."""
        if self._broken is None:
            self._broken = why
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        self.wake()

    # -- framing -----------------------------------------------------------------------
    def _wait_fd(self, deadline, write=False):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        fd = self._stream.fileno()
        try:
            if write:
                ready = select.select([], [fd], [], remaining)[1]
            else:
                ready = select.select([fd], [], [], remaining)[0]
        except (OSError, ValueError) as error:
            raise ConnectionLost("select failed: %s" % error)
        return bool(ready)

    def _send_all(self, data, deadline, op, path):
        view = memoryview(data)
        while len(view):
            try:
                sent = self._stream.send(view)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as error:
                self._fail(str(error))
                raise ConnectionLost("send failed: %s" % error, op, path)
            view = view[sent:]
            if len(view) and not self._wait_fd(deadline, write=True):
                self._fail("send timed out")
                raise XenstoreTimeout(op, path, self.timeout)

    def _fill(self, deadline, op, path):
        """Read what is available into the buffer, waiting until ``deadline``."""
        while True:
            try:
                data = self._stream.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError as error:
                if error.errno == errno.EAGAIN:
                    data = None
                else:
                    self._fail(str(error))
                    raise ConnectionLost("receive failed: %s" % error, op, path)
            if data is not None:
                if not data:
                    self._fail("xenstore closed the connection")
                    raise ConnectionLost("xenstore closed the connection", op, path)
                self._buf.extend(data)
                return True
            if not self._wait_fd(deadline):
                return False

    def _frame_ready(self):
        if len(self._buf) < HEADER.size:
            return False
        length = HEADER.unpack_from(self._buf)[3]
        if length > PAYLOAD_MAX:
            self._fail("oversized frame")
            raise ConnectionLost("xenstore sent a frame of %d bytes (limit %d)"
                                 % (length, PAYLOAD_MAX))
        return len(self._buf) >= HEADER.size + length

    def _take_frame(self):
        kind, req, tx, length = HEADER.unpack_from(self._buf)
        payload = bytes(self._buf[HEADER.size:HEADER.size + length])
        del self._buf[:HEADER.size + length]
        return kind, req, tx, payload

    def _queue_event(self, payload):
        parts = payload.split(b"\0")
        if len(parts) < 2:
            return
        try:
            event = WatchEvent(parts[0].decode("ascii"), parts[1].decode("ascii"))
        except UnicodeDecodeError:
            return
        with self._events_lock:
            if len(self._events) == self._events.maxlen:
                self.dropped_events += 1
            self._events.append(event)
        self._notify()

    def _notify(self):
        fd = self._wake_w
        if fd is not None:
            try:
                os.write(fd, b"e")
            except OSError:  # pipe full: the waiter will look anyway
                pass

    def _call(self, op, payload, tx=0, path=""):
        if len(payload) > PAYLOAD_MAX:
            raise XenstoreError("E2BIG", _OP_NAMES.get(op, str(op)), path,
                                "request of %d bytes" % len(payload))
        name = _OP_NAMES.get(op, str(op))
        with self._lock:
            if self._broken is not None or self._stream is None:
                raise ConnectionLost(self._broken or "closed", name, path)
            self._req = (self._req + 1) & 0xFFFFFFFF
            req = self._req
            deadline = time.monotonic() + self.timeout
            self._send_all(HEADER.pack(op, req, tx, len(payload)) + payload,
                           deadline, name, path)
            while True:
                while not self._frame_ready():
                    if not self._fill(deadline, name, path):
                        self._fail("timed out")
                        raise XenstoreTimeout(name, path, self.timeout)
                kind, rreq, _tx, body = self._take_frame()
                if kind == XS_WATCH_EVENT:
                    self._queue_event(body)
                    continue
                if rreq != req:
                    continue  # a stale reply: not ours
                # Frames read together with the reply are watch events: queue them now,
                # or they would wait in the buffer for the next byte from xenstored.
                self._queue_buffered_events()
                if kind == XS_ERROR:
                    code = body.split(b"\0", 1)[0].decode("ascii", "replace")[:32]
                    raise XenstoreError(code or "EIO", name, path)
                if kind != op:
                    self._fail("reply type mismatch")
                    raise ConnectionLost("reply of type %d to a %s request" % (kind, name),
                                         name, path)
                return body

    def _queue_buffered_events(self):
        while self._frame_ready():
            kind, _req, _tx, body = self._take_frame()
            if kind == XS_WATCH_EVENT:
                self._queue_event(body)

    # -- operations --------------------------------------------------------------------
    def read(self, path, tx=0):
        """The value at ``path`` (bytes)."""
        check_path(path)
        return self._call(XS_READ, path.encode() + b"\0", tx, path)

    def write(self, path, value, tx=0):
        """Set ``path`` to ``value`` (bytes or ASCII str), creating missing parents."""
        check_path(path)
        if isinstance(value, str):
            value = value.encode("ascii")
        self._call(XS_WRITE, path.encode() + b"\0" + bytes(value), tx, path)

    def mkdir(self, path, tx=0):
        check_path(path)
        self._call(XS_MKDIR, path.encode() + b"\0", tx, path)

    def rm(self, path, tx=0):
        """Remove ``path`` and everything below it."""
        check_path(path)
        self._call(XS_RM, path.encode() + b"\0", tx, path)

    def directory(self, path, tx=0):
        """Names of the children of ``path`` (a list of str)."""
        check_path(path)
        body = self._call(XS_DIRECTORY, path.encode() + b"\0", tx, path)
        names = body.split(b"\0")
        if names and names[-1] == b"":
            names.pop()
        try:
            return [n.decode("ascii") for n in names]
        except UnicodeDecodeError:
            raise XenstoreError("EINVAL", "directory", path, "non-ASCII child name")

    def get_perms(self, path, tx=0):
        """Permissions of ``path``: ``["n0", "r5", ...]`` (owner first)."""
        check_path(path)
        body = self._call(XS_GET_PERMS, path.encode() + b"\0", tx, path)
        return [p.decode("ascii", "replace") for p in body.split(b"\0") if p]

    def set_perms(self, path, perms, tx=0):
        check_path(path)
        payload = path.encode() + b"\0" + b"".join(p.encode("ascii") + b"\0" for p in perms)
        self._call(XS_SET_PERMS, payload, tx, path)

    def watch(self, path, token):
        """Watch ``path`` and below; events carry ``token``. xenstored fires one event
        at once when the watch is set."""
        check_path(path)
        self._call(XS_WATCH, path.encode() + b"\0" + token.encode("ascii") + b"\0",
                   0, path)

    def unwatch(self, path, token):
        check_path(path)
        self._call(XS_UNWATCH, path.encode() + b"\0" + token.encode("ascii") + b"\0",
                   0, path)
        with self._events_lock:
            kept = [e for e in self._events if e.token != token]
            self._events.clear()
            self._events.extend(kept)

    def transaction_start(self):
        """Start a transaction; returns its id for the ``tx`` argument of other calls."""
        body = self._call(XS_TRANSACTION_START, b"\0")
        try:
            return int(body.split(b"\0", 1)[0])
        except ValueError:
            self._fail("bad transaction id")
            raise ConnectionLost("xenstore sent a bad transaction id", "transaction_start")

    def transaction_end(self, tx, commit=True):
        """End a transaction. Returns False when a commit conflicted (EAGAIN: retry)."""
        try:
            self._call(XS_TRANSACTION_END, b"T\0" if commit else b"F\0", tx)
        except XenstoreError as error:
            if commit and error.code == "EAGAIN":
                return False
            raise
        return True

    # -- watch events ------------------------------------------------------------------
    def _pop_event(self, token):
        with self._events_lock:
            for index, event in enumerate(self._events):
                if token is None or event.token == token:
                    del self._events[index]
                    return event
        return None

    def _drain_pipe(self):
        fd = self._wake_r
        if fd is None:
            return
        try:
            while os.read(fd, 4096):
                pass
        except OSError:
            pass

    def wake(self):
        """Make a thread blocked in wait_event return None (safe from signal handlers
        and other threads)."""
        self._woken = True
        self._notify()

    def wait_event(self, timeout=None, token=None):
        """The next watch event (a WatchEvent) with ``token`` (any when None), or None
        when ``timeout`` seconds passed or wake() was called. Raises ConnectionLost when
        the connection is gone."""
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0)
        while True:
            event = self._pop_event(token)
            if event is not None:
                return event
            if self._broken is not None:
                raise ConnectionLost(self._broken)
            if self._woken:
                self._woken = False
                return None
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            stream, wake_r = self._stream, self._wake_r
            if stream is None or wake_r is None:
                raise ConnectionLost(self._broken or "closed")
            try:
                ready = select.select([stream.fileno(), wake_r], [], [], remaining)[0]
            except (OSError, ValueError):
                if self._broken is not None:
                    raise ConnectionLost(self._broken)
                raise
            if wake_r in ready:
                self._drain_pipe()
            if stream.fileno() in ready:
                self._read_events()

    def _read_events(self):
        """Take the frames that are there now (only events: no request is pending
        while we hold the lock)."""
        # A call running in another thread queues the events it sees; wait for it.
        with self._lock:
            if self._stream is None:
                return
            deadline = time.monotonic() + self.timeout
            if not self._fill(time.monotonic(), "watch", ""):
                return
            while True:
                while not self._frame_ready():
                    if not self._fill(deadline, "watch", ""):
                        self._fail("a watch event frame was cut short")
                        raise ConnectionLost("a watch event frame was cut short")
                kind, _req, _tx, body = self._take_frame()
                if kind == XS_WATCH_EVENT:
                    self._queue_event(body)
                if not self._buf:
                    return


def _set_nonblocking(fd):
    import fcntl
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)


def is_missing(error):
    """True for the error xenstore gives for a node that does not exist."""
    return isinstance(error, XenstoreError) and error.code == "ENOENT"
