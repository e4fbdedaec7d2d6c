"""The lab's xenstore daemon: one thread, one ``selectors`` loop.

Connections on the dom0 socket are domain 0 (privileged). INTRODUCE <domid> creates the
Unix socket ``<guest dir>/<domid>``, which stands in for that guest's /dev/xen/xenbus:
every connection on it is domain <domid>. RELEASE removes it and closes its connections.
"""
import datetime
import errno
import os
import selectors
import signal
import socket
import stat
import sys
import threading
import traceback

from . import protocol as P
from .protocol import XsError
from .store import (ROOT, Store, ancestors_and_self, can_read, parse_perms,
                    parent_of, perms_to_strings, valid_chars)

WATCH_QUOTA = 100          # oxenstored quota-maxwatch (per guest connection)
TRANSACTION_QUOTA = 10     # oxenstored quota-transaction (per guest connection)
TX_REQUESTS_MAX = 1024     # oxenstored quota-maxrequests (ops in one guest transaction)
DOMID_FIRST_SPECIAL = 0x7FF0  # DOMID_SELF and above are not real domains

OUT_PAUSE = 1 << 20        # stop reading a client whose unread output passes this
OUT_RESUME = 256 << 10
OUT_DROP_EVENTS = 4 << 20  # drop watch events for a client that reads nothing

STORE_OPS = frozenset([P.XS_DIRECTORY, P.XS_DIRECTORY_PART, P.XS_READ, P.XS_GET_PERMS,
                       P.XS_WRITE, P.XS_MKDIR, P.XS_RM, P.XS_SET_PERMS])
WRITE_OPS = frozenset([P.XS_WRITE, P.XS_MKDIR, P.XS_RM, P.XS_SET_PERMS])


class Watch(object):
    __slots__ = ("conn", "path", "token", "strip")

    def __init__(self, conn, path, token, strip):
        self.conn = conn
        self.path = path      # absolute path, or '@...'
        self.token = token    # bytes
        self.strip = strip    # chars to strip from event paths (relative watches)


class Transaction(object):
    __slots__ = ("id", "view", "requests")

    def __init__(self, tid, view):
        self.id = tid
        self.view = view
        self.requests = 0


class Conn(object):
    def __init__(self, sock, domid, serial):
        self.sock = sock
        self.domid = domid
        self.name = "d%d#%d" % (domid, serial)
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.watches = []
        self.transactions = {}
        self.next_tid = 1
        self.closed = False
        self.paused = False
        self.mask = selectors.EVENT_READ
        self.dropped_events = 0

    @property
    def base(self):
        return "/local/domain/%d" % self.domid


class Domain(object):
    def __init__(self, domid, mfn, port, listener, sock_path):
        self.domid = domid
        self.mfn = mfn
        self.port = port
        self.listener = listener
        self.sock_path = sock_path
        self.conns = set()


class XenstoreDaemon(object):
    """Usable from tests: ``d = XenstoreDaemon(...); d.start()`` (thread) ... ``d.stop()``,
    or ``d.serve_forever()`` in the calling thread."""

    def __init__(self, dom0_socket, guest_socket_dir, log_file=None):
        self.dom0_socket = os.path.abspath(dom0_socket)
        self.guest_dir = os.path.abspath(guest_socket_dir)
        self.log_file = log_file
        self.store = Store()
        self.sel = None
        self.domains = {}
        self.conns = set()
        self.watch_index = {}
        self._serial = 0
        self._stopping = False
        self._ready = threading.Event()
        self._thread = None
        self._wake_r = self._wake_w = None
        self._listener = None
        self._created_guest_dir = False
        self._logf = None
        self._dirty = set()

    # ------------------------------------------------------------------ logging
    def log(self, msg):
        line = "%s xenstored: %s\n" % (
            datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], msg)
        f = self._logf
        try:
            if f is not None:
                f.write(line)
                f.flush()
            elif self.log_file is None:
                sys.stderr.write(line)
        except (OSError, ValueError):
            pass

    # ------------------------------------------------------------------ life cycle
    def start(self):
        """Serve in a background thread; returns once the dom0 socket accepts."""
        self._thread = threading.Thread(target=self.serve_forever, name="xenstored",
                                        daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self, timeout=10):
        self._stopping = True
        w = self._wake_w
        if w is not None:
            try:
                w.send(b"x")
            except OSError:
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _setup(self):
        if self.log_file:
            self._logf = open(self.log_file, "a")
        self.sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.sel.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        if not os.path.isdir(self.guest_dir):
            os.makedirs(self.guest_dir, 0o755)
            self._created_guest_dir = True
        self._listener = self._listen(self.dom0_socket, 0o600)
        self.sel.register(self._listener, selectors.EVENT_READ, ("listen", 0))
        self.log("started: dom0 socket %s, guest sockets in %s, pid %d"
                 % (self.dom0_socket, self.guest_dir, os.getpid()))

    def _listen(self, path, mode):
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)
        except FileNotFoundError:
            pass
        # Bound and listening under a temporary name, then renamed: the path appears only
        # once connections are accepted (a client that sees it is never refused).
        staging = "%s.new-%d" % (path, os.getpid())
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.bind(staging)
            os.chmod(staging, mode)
            s.listen(128)
            s.setblocking(False)
            os.rename(staging, path)
        except OSError:
            s.close()
            try:
                os.unlink(staging)
            except OSError:
                pass
            raise
        return s

    def serve_forever(self):
        try:
            self._setup()
        finally:
            self._ready.set()
        try:
            while not self._stopping:
                events = self.sel.select(timeout=5.0)
                for key, mask in events:
                    kind, obj = key.data
                    if kind == "conn":
                        if obj.closed:
                            continue
                        if mask & selectors.EVENT_WRITE:
                            self._flush(obj)
                        if mask & selectors.EVENT_READ and not obj.closed:
                            self._on_readable(obj)
                    elif kind == "listen":
                        self._accept(key.fileobj, obj)
                    else:
                        try:
                            self._wake_r.recv(4096)
                        except OSError:
                            pass
                    self._flush_dirty()
        finally:
            self._cleanup()

    def _cleanup(self):
        for conn in list(self.conns):
            self._close(conn, "daemon stopping", quiet=True)
        for dom in list(self.domains.values()):
            self._drop_listener(dom)
        self.domains.clear()
        if self._listener is not None:
            self._unregister(self._listener)
            self._listener.close()
            try:
                os.unlink(self.dom0_socket)
            except OSError:
                pass
        if self._created_guest_dir:
            try:
                os.rmdir(self.guest_dir)
            except OSError:
                pass
        for s in (self._wake_r, self._wake_w):
            if s is not None:
                s.close()
        self._wake_w = None
        if self.sel is not None:
            self.sel.close()
        self.log("stopped")
        if self._logf is not None:
            self._logf.close()
            self._logf = None

    def _unregister(self, fileobj):
        try:
            self.sel.unregister(fileobj)
        except (KeyError, ValueError):
            pass

    # ------------------------------------------------------------------ connections
    def _accept(self, listener, domid):
        while True:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self.log("accept on domain %d socket failed: %s" % (domid, e))
                return
            if domid != 0 and domid not in self.domains:
                sock.close()
                continue
            sock.setblocking(False)
            self._serial += 1
            conn = Conn(sock, domid, self._serial)
            self.conns.add(conn)
            if domid != 0:
                self.domains[domid].conns.add(conn)
            self.sel.register(sock, selectors.EVENT_READ, ("conn", conn))
            if domid != 0:
                self.log("%s: connected" % conn.name)

    def _close(self, conn, why, quiet=False):
        if conn.closed:
            return
        conn.closed = True
        self._unregister(conn.sock)
        try:
            conn.sock.close()
        except OSError:
            pass
        self.conns.discard(conn)
        self._dirty.discard(conn)
        dom = self.domains.get(conn.domid)
        if dom is not None:
            dom.conns.discard(conn)
        n_watches, n_tx = len(conn.watches), len(conn.transactions)
        self._drop_watches(conn)
        conn.transactions.clear()
        # dom0 tools connect once per command: only say something when it matters.
        routine = (conn.domid == 0 and why == "client disconnected"
                   and not n_tx and not n_watches)
        if not quiet and not routine:
            self.log("%s: closed (%s); dropped %d watches, %d transactions"
                     % (conn.name, why, n_watches, n_tx))

    def _on_readable(self, conn):
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._close(conn, "read error: %s" % e)
            return
        if not data:
            self._close(conn, "client disconnected")
            return
        conn.inbuf += data
        self._process_input(conn)

    def _process_input(self, conn):
        buf = conn.inbuf
        while not conn.closed and not conn.paused and len(buf) >= P.HEADER_SIZE:
            op, rid, tid, length = P.HEADER.unpack_from(buf)
            if length > P.PAYLOAD_MAX:
                self.log("%s: bad client: message length %d > %d (op %s), dropping "
                         "the connection" % (conn.name, length, P.PAYLOAD_MAX, P.op_name(op)))
                self._close(conn, "oversized message")
                return
            end = P.HEADER_SIZE + length
            if len(buf) < end:
                break
            payload = bytes(buf[P.HEADER_SIZE:end])
            del buf[:end]
            self._handle(conn, op, rid, tid, payload)

    def _queue(self, conn, op, rid, tid, payload):
        if conn.closed:
            return
        conn.outbuf += P.pack(op, rid, tid, payload)
        self._dirty.add(conn)

    def _flush_dirty(self):
        while self._dirty:
            conn = self._dirty.pop()
            self._flush(conn)

    def _flush(self, conn):
        if conn.closed:
            return
        out = conn.outbuf
        while out:
            try:
                n = conn.sock.send(out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                self._close(conn, "write error: %s" % e)
                return
            del out[:n]
        if conn.paused and len(out) < OUT_RESUME:
            conn.paused = False
        elif not conn.paused and len(out) > OUT_PAUSE:
            conn.paused = True
        mask = (0 if conn.paused else selectors.EVENT_READ) | \
               (selectors.EVENT_WRITE if out else 0)
        if mask != conn.mask:
            conn.mask = mask
            if mask:
                self.sel.modify(conn.sock, mask, ("conn", conn))
            else:
                self._unregister(conn.sock)
        if not conn.paused and conn.inbuf and len(conn.inbuf) >= P.HEADER_SIZE:
            self._process_input(conn)
            if conn.outbuf and not conn.closed:
                self._dirty.add(conn)

    # ------------------------------------------------------------------ requests
    def _handle(self, conn, op, rid, tid, payload):
        post = None
        try:
            reply, post = self._dispatch(conn, op, tid, payload)
            self._queue(conn, op, rid, tid, reply)
        except XsError as e:
            if e.code in ("EQUOTA", "E2BIG"):
                self.log("%s: %s refused: %s" % (conn.name, P.op_name(op), e.code))
            self._queue(conn, P.XS_ERROR, rid, tid, e.code.encode() + b"\0")
        except Exception:  # a bug here must not take the daemon down
            self.log("%s: internal error on %s: %s" % (
                conn.name, P.op_name(op), traceback.format_exc().replace("\n", " | ")))
            self._queue(conn, P.XS_ERROR, rid, tid, b"EIO\0")
        if post is not None:
            try:
                post()
            except Exception:
                self.log("internal error after %s: %s" % (
                    P.op_name(op), traceback.format_exc().replace("\n", " | ")))

    def _dispatch(self, conn, op, tid, payload):
        if op in STORE_OPS:
            return self._store_op(conn, op, tid, payload)
        handler = self._HANDLERS.get(op)
        if handler is None:
            raise XsError("ENOSYS")
        return handler(self, conn, tid, payload)

    # -- argument parsing
    @staticmethod
    def _decode(raw):
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise XsError("EINVAL", "non-ASCII")

    def _path(self, conn, raw, allow_special=False):
        """Canonical absolute path of a request's path argument (oxenstored rules)."""
        s = self._decode(raw)
        if not s or not valid_chars(s):
            raise XsError("EINVAL")
        if s[0] == "@":
            if not allow_special:
                raise XsError("EINVAL")
            return s
        if s[0] != "/":
            s = conn.base + "/" + s
        if s != ROOT and (s.endswith("/") or "//" in s):
            raise XsError("EINVAL")
        # Length limit: the part below /local/domain/<N>/ for a domain's home,
        # else the whole path (oxenstored Utils.path_validate).
        length = len(s)
        if s.startswith("/local/domain/"):
            rest = s[len("/local/domain/"):]
            slash = rest.find("/")
            if slash > 0 and rest[:slash].isdigit():
                length = len(rest) - slash - 1
        if length > P.REL_PATH_MAX:
            raise XsError("EINVAL", "path too long")
        return s

    @staticmethod
    def _one_arg(payload):
        """The payload must be exactly one nul-terminated string."""
        if not payload or payload.find(b"\0") != len(payload) - 1:
            raise XsError("EINVAL")
        return payload[:-1]

    @staticmethod
    def _domid_arg(payload):
        strings, _ = P.split_strings(payload)
        if not strings:
            raise XsError("EINVAL")
        s = strings[0]
        if not s.isdigit():
            raise XsError("EINVAL")
        return int(s)

    # -- store operations
    def _store_op(self, conn, op, tid, payload):
        if tid:
            tx = conn.transactions.get(tid)
            if tx is None:
                raise XsError("ENOENT", "no such transaction")
            if conn.domid != 0:
                if tx.requests >= TX_REQUESTS_MAX:
                    raise XsError("EQUOTA")
                tx.requests += 1
            view = tx.view
        else:
            view = self.store.live
        domid = conn.domid
        if op == P.XS_READ:
            return view.read(domid, self._path(conn, self._one_arg(payload))), None
        if op == P.XS_DIRECTORY:
            children = view.directory(domid, self._path(conn, self._one_arg(payload)))
            reply = "".join(c + "\0" for c in children).encode()
            if len(reply) > P.PAYLOAD_MAX:
                raise XsError("E2BIG")
            return reply, None
        if op == P.XS_DIRECTORY_PART:
            return self._directory_part(conn, view, payload), None
        if op == P.XS_GET_PERMS:
            path = self._path(conn, self._one_arg(payload), allow_special=True)
            perms = view.get_perms(domid, path)
            return "".join(s + "\0" for s in perms_to_strings(perms)).encode(), None
        try:
            if op == P.XS_WRITE:
                i = payload.find(b"\0")
                if i < 0:
                    raise XsError("EINVAL")
                view.write(domid, self._path(conn, payload[:i]), payload[i + 1:])
            elif op == P.XS_MKDIR:
                view.mkdir(domid, self._path(conn, self._one_arg(payload)))
            elif op == P.XS_RM:
                view.rm(domid, self._path(conn, self._one_arg(payload)))
            else:  # SET_PERMS
                strings, complete = P.split_strings(payload)
                if len(strings) < 2 or not complete:
                    raise XsError("EINVAL")
                path = self._path(conn, strings[0], allow_special=True)
                perms = parse_perms([self._decode(s) for s in strings[1:]])
                view.set_perms(domid, path, perms)
        except XsError:
            if not tid:
                view.events = []
            raise
        if tid:
            return b"OK\0", None
        events, view.events = view.events, []
        return b"OK\0", (lambda: self._fire(events)) if events else None

    def _directory_part(self, conn, view, payload):
        # C xenstored send_directory_part: <gencnt>|<children from offset>...
        strings, complete = P.split_strings(payload)
        if len(strings) != 2 or not complete:
            raise XsError("EINVAL")
        node = view.directory_node(conn.domid, self._path(conn, strings[0]))
        try:
            off = int(strings[1] or b"0")
        except ValueError:
            off = 0
        children = b"".join(c.encode() + b"\0" for c in node.children)
        gen = str(node.gen).encode() + b"\0"
        if off >= len(children):
            return gen + b"\0"
        maxlen = P.PAYLOAD_MAX - len(gen) - 1
        chunk_end = off
        while chunk_end < len(children):
            nxt = children.index(b"\0", chunk_end) + 1
            if nxt - off > maxlen:
                break
            chunk_end = nxt
        data = gen + children[off:chunk_end]
        if chunk_end == len(children):
            data += b"\0"
        return data

    # -- watches
    def _watch_args(self, conn, payload):
        strings, complete = P.split_strings(payload)
        if len(strings) != 2 or not complete:
            raise XsError("EINVAL")
        raw = strings[0]
        relative = raw[:1] not in (b"/", b"@")
        path = self._path(conn, raw, allow_special=True)
        return path, strings[1], relative

    def _op_watch(self, conn, tid, payload):
        path, token, relative = self._watch_args(conn, payload)
        for w in conn.watches:
            if w.path == path and w.token == token:
                raise XsError("EEXIST")
        if conn.domid != 0 and len(conn.watches) >= WATCH_QUOTA:
            raise XsError("EQUOTA")
        w = Watch(conn, path, token, len(conn.base) + 1 if relative else 0)
        conn.watches.append(w)
        self.watch_index.setdefault(path, []).append(w)
        # Fired once straight away, whatever the permissions (xenstore.txt).
        return b"OK\0", lambda: self._send_event(w, path)

    def _op_unwatch(self, conn, tid, payload):
        path, token, _ = self._watch_args(conn, payload)
        for w in conn.watches:
            if w.path == path and w.token == token:
                conn.watches.remove(w)
                self._unindex(w)
                return b"OK\0", None
        raise XsError("ENOENT")

    def _unindex(self, w):
        lst = self.watch_index.get(w.path)
        if lst is not None:
            try:
                lst.remove(w)
            except ValueError:
                pass
            if not lst:
                del self.watch_index[w.path]

    def _drop_watches(self, conn):
        for w in conn.watches:
            self._unindex(w)
        conn.watches = []

    def _op_reset_watches(self, conn, tid, payload):
        self._drop_watches(conn)
        conn.transactions.clear()
        return b"OK\0", None

    def _send_event(self, w, path):
        conn = w.conn
        if conn.closed:
            return
        epath = path[w.strip:] if w.strip else path
        data = epath.encode() + b"\0" + w.token + b"\0"
        if len(data) > P.PAYLOAD_MAX:
            return
        if len(conn.outbuf) > OUT_DROP_EVENTS:
            conn.dropped_events += 1
            if conn.dropped_events in (1, 100, 10000):
                self.log("%s: not reading, dropped %d watch events"
                         % (conn.name, conn.dropped_events))
            return
        self._queue(conn, P.XS_WATCH_EVENT, 0, 0, data)

    def _may_see(self, domid, cands):
        # C xenstored watch_permitted(): the node (old or new permissions) or its
        # parent must be readable.
        if domid == 0:
            return True
        for perms in cands:
            if can_read(domid, perms):
                return True
        return False

    def _fire(self, events):
        index = self.watch_index
        if not index:
            return
        for ev in events:
            kind, path = ev[0], ev[1]
            if kind == "change":
                cands = ev[2]
            else:  # rm
                removed, parent_perms = ev[2], ev[3]
                cands = (removed[path].perms, parent_perms)
            for p in ancestors_and_self(path):
                for w in index.get(p, ()):
                    if self._may_see(w.conn.domid, cands):
                        self._send_event(w, path)
            if kind == "rm":
                # Watches below a removed node fire with their own path (xenstore.txt:
                # "<epath> is just <wpath>"), judged on the permissions it had.
                prefix = path + "/"
                for wpath, ws in list(index.items()):
                    if not wpath.startswith(prefix):
                        continue
                    node = removed.get(wpath)
                    parent = removed.get(parent_of(wpath))
                    cands = tuple(n.perms for n in (node, parent) if n is not None)
                    for w in list(ws):
                        if cands and self._may_see(w.conn.domid, cands):
                            self._send_event(w, wpath)

    def _fire_special(self, name):
        perms = self.store.special[name]
        for w in list(self.watch_index.get(name, ())):
            # XSA-115: special events only for privileged callers, unless dom0 granted
            # read access on the special node with SET_PERMS.
            if w.conn.domid == 0 or can_read(w.conn.domid, perms):
                self._send_event(w, name)

    # -- transactions
    def _op_transaction_start(self, conn, tid, payload):
        if tid:
            raise XsError("EBUSY")
        if conn.domid != 0 and len(conn.transactions) >= TRANSACTION_QUOTA:
            raise XsError("EQUOTA")
        new = conn.next_tid
        while new in conn.transactions or new == 0:
            new = (new + 1) & 0xFFFFFFFF
        conn.next_tid = (new + 1) & 0xFFFFFFFF or 1
        conn.transactions[new] = Transaction(new, self.store.snapshot())
        return ("%d\0" % new).encode(), None

    def _op_transaction_end(self, conn, tid, payload):
        strings, _ = P.split_strings(payload)
        arg = strings[0] if strings else None
        if arg not in (b"T", b"F"):
            raise XsError("EINVAL")
        tx = conn.transactions.pop(tid, None) if tid else None
        if tx is None:
            raise XsError("ENOENT", "no such transaction")
        if arg == b"F":
            return b"OK\0", None
        if not self.store.commit(tx.view):
            self.log("%s: transaction %d conflicts: EAGAIN" % (conn.name, tid))
            raise XsError("EAGAIN")
        events = tx.view.events
        return b"OK\0", (lambda: self._fire(events)) if events else None

    # -- domains
    def _need_dom0(self, conn):
        if conn.domid != 0:
            raise XsError("EACCES")

    def _op_introduce(self, conn, tid, payload):
        self._need_dom0(conn)
        strings, _ = P.split_strings(payload)
        if len(strings) < 3:
            raise XsError("EINVAL")
        try:
            domid = int(strings[0])
            mfn = int(strings[1])
            port = int(strings[2])
        except ValueError:
            raise XsError("EINVAL")
        if domid <= 0 or domid >= DOMID_FIRST_SPECIAL:
            raise XsError("EINVAL")
        dom = self.domains.get(domid)
        if dom is not None:
            if dom.mfn != mfn or dom.port != port:
                raise XsError("EINVAL", "domain already introduced differently")
            return b"OK\0", None
        path = os.path.join(self.guest_dir, str(domid))
        try:
            listener = self._listen(path, 0o666)
        except OSError as e:
            self.log("INTRODUCE %d: cannot create %s: %s" % (domid, path, e))
            raise XsError("EIO" if e.errno != errno.ENAMETOOLONG else "EINVAL")
        dom = Domain(domid, mfn, port, listener, path)
        self.domains[domid] = dom
        self.sel.register(listener, selectors.EVENT_READ, ("listen", domid))
        self.log("INTRODUCE domain %d (mfn %d, port %d): socket %s" % (domid, mfn, port, path))
        return b"OK\0", lambda: self._fire_special("@introduceDomain")

    def _drop_listener(self, dom):
        self._unregister(dom.listener)
        dom.listener.close()
        try:
            os.unlink(dom.sock_path)
        except OSError:
            pass

    def _op_release(self, conn, tid, payload):
        self._need_dom0(conn)
        strings, complete = P.split_strings(payload)
        if len(strings) != 1 or not complete or not strings[0].isdigit():
            raise XsError("EINVAL")
        domid = int(strings[0])
        dom = self.domains.pop(domid, None)
        if dom is None:
            raise XsError("EINVAL", "domain not introduced")
        self._drop_listener(dom)
        for c in list(dom.conns):
            self._close(c, "domain %d released" % domid)
        deleted = self.store.forget_domain(domid)
        self.log("RELEASE domain %d: socket removed, %d node(s) it owned deleted"
                 % (domid, deleted))
        return b"OK\0", lambda: self._fire_special("@releaseDomain")

    def _op_resume(self, conn, tid, payload):
        self._need_dom0(conn)
        if self._domid_arg(payload) not in self.domains:
            raise XsError("EINVAL")
        return b"OK\0", None

    def _op_is_introduced(self, conn, tid, payload):
        self._need_dom0(conn)
        domid = self._domid_arg(payload)
        yes = domid == 0 or domid == DOMID_FIRST_SPECIAL or domid in self.domains
        return (b"T\0" if yes else b"F\0"), None

    def _op_get_domain_path(self, conn, tid, payload):
        strings, complete = P.split_strings(payload)
        if len(strings) != 1 or not complete:
            raise XsError("EINVAL")
        # Parsed as loosely as oxenstored (c_int_of_string): the first run of digits.
        digits = ""
        for ch in self._decode(strings[0]):
            if ch.isdigit():
                digits += ch
            elif digits:
                break
        domid = int(digits) if digits else 0
        return ("/local/domain/%d\0" % domid).encode(), None

    def _op_control(self, conn, tid, payload):
        strings, _ = P.split_strings(payload)
        if conn.domid == 0 and len(strings) >= 2 and strings[0] == b"print":
            self.log("%s: print: %s" % (conn.name, strings[1].decode("ascii", "replace")))
        return b"OK\0", None

    _HANDLERS = {
        P.XS_CONTROL: _op_control,
        P.XS_WATCH: _op_watch,
        P.XS_UNWATCH: _op_unwatch,
        P.XS_TRANSACTION_START: _op_transaction_start,
        P.XS_TRANSACTION_END: _op_transaction_end,
        P.XS_INTRODUCE: _op_introduce,
        P.XS_RELEASE: _op_release,
        P.XS_GET_DOMAIN_PATH: _op_get_domain_path,
        P.XS_IS_DOMAIN_INTRODUCED: _op_is_introduced,
        P.XS_RESUME: _op_resume,
        P.XS_RESET_WATCHES: _op_reset_watches,
    }


def serve(dom0_socket, guest_socket_dir, log_file=None):
    """Run the daemon in this thread until SIGTERM/SIGINT (when called from the main
    thread) or ``stop()``; the sockets it made are removed on the way out."""
    daemon = XenstoreDaemon(dom0_socket, guest_socket_dir, log_file)
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum, frame):
            daemon.log("signal %d: stopping" % signum)
            daemon.stop()
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    daemon.serve_forever()
    return daemon
