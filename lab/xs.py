"""A minimal xenstore client for the lab's toolstack role (what xenopsd does as dom0).

Speaks the wire protocol of Xen's docs/misc/xenstore.txt to the lab's xenstored.
"""
import socket
import struct

OPS = {"read": 2, "introduce": 8, "release": 9, "write": 11, "mkdir": 12, "rm": 13,
       "set_perms": 14, "error": 16}
HEADER = struct.Struct("<IIII")


class XenstoreError(RuntimeError):
    pass


class Client(object):
    def __init__(self, path, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.req = 0

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, op, *parts, **kw):
        payload = b"\0".join(p.encode() for p in parts)
        if kw.get("terminated", True):
            payload += b"\0"
        self.req += 1
        self.sock.sendall(HEADER.pack(OPS[op], self.req, 0, len(payload)) + payload)
        while True:
            kind, _req, _tx, length = HEADER.unpack(self._recv(HEADER.size))
            body = self._recv(length)
            if kind == 15:  # a watch event: not ours, skip
                continue
            if kind == OPS["error"]:
                raise XenstoreError("%s %s: %s" % (op, parts[0] if parts else "",
                                                   body.rstrip(b"\0").decode()))
            return body.decode()

    def _recv(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise XenstoreError("xenstored closed the connection")
            buf += chunk
        return buf

    def read(self, path):
        return self._call("read", path)

    def write(self, path, value):
        return self._call("write", path, value, terminated=False)

    def mkdir(self, path):
        return self._call("mkdir", path)

    def rm(self, path):
        try:
            return self._call("rm", path)
        except XenstoreError as e:
            if "ENOENT" not in str(e):
                raise

    def set_perms(self, path, perms):
        return self._call("set_perms", path, *perms)

    def introduce(self, domid, mfn=0, port=0):
        return self._call("introduce", str(domid), str(mfn), str(port))

    def release(self, domid):
        return self._call("release", str(domid))


# What xapi/xenopsd give a guest in its own tree (platform-facts.md): it owns these.
GUEST_OWNED = ["data", "attr", "control", "vm-data", "feature", "drivers", "error",
               "messages", "xenserver/attr", "rrd"]


def create_domain(socket_path, domid, vm_uuid, name):
    """Build /local/domain/<domid> as the toolstack does, then introduce the domain."""
    base = "/local/domain/%d" % domid
    with Client(socket_path) as xs:
        xs.mkdir(base)
        xs.set_perms(base, ["n0", "r%d" % domid])
        xs.write(base + "/vm", "/vm/" + vm_uuid)
        xs.write(base + "/name", name)
        xs.write(base + "/domid", str(domid))
        for sub in ("vm/" + vm_uuid,):
            xs.mkdir("/" + sub)
        for sub in GUEST_OWNED:
            xs.mkdir(base + "/" + sub)
            xs.set_perms(base + "/" + sub, ["n%d" % domid])
        xs.introduce(domid)


def destroy_domain(socket_path, domid, vm_uuid):
    with Client(socket_path) as xs:
        try:
            xs.release(domid)
        except XenstoreError:
            pass
        xs.rm("/local/domain/%d" % domid)
