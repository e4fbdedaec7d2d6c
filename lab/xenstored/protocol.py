"""Wire format of the xenstore protocol (Xen's docs/misc/xenstore.txt, io/xs_wire.h).

Every message, both ways, is a 16-byte little-endian header ``type, req_id, tx_id, len``
followed by ``len`` bytes of payload (at most XENSTORE_PAYLOAD_MAX).
"""
import struct

HEADER = struct.Struct("<IIII")
HEADER_SIZE = HEADER.size  # 16

PAYLOAD_MAX = 4096          # XENSTORE_PAYLOAD_MAX
REL_PATH_MAX = 2048         # XENSTORE_REL_PATH_MAX (oxenstored's Define.path_max)

# enum xsd_sockmsg_type
XS_CONTROL = 0              # formerly XS_DEBUG
XS_DIRECTORY = 1
XS_READ = 2
XS_GET_PERMS = 3
XS_WATCH = 4
XS_UNWATCH = 5
XS_TRANSACTION_START = 6
XS_TRANSACTION_END = 7
XS_INTRODUCE = 8
XS_RELEASE = 9
XS_GET_DOMAIN_PATH = 10
XS_WRITE = 11
XS_MKDIR = 12
XS_RM = 13
XS_SET_PERMS = 14
XS_WATCH_EVENT = 15
XS_ERROR = 16
XS_IS_DOMAIN_INTRODUCED = 17
XS_RESUME = 18
XS_SET_TARGET = 19
XS_RESTRICT = 20
XS_RESET_WATCHES = 21
XS_DIRECTORY_PART = 22

OP_NAMES = {
    XS_CONTROL: "CONTROL", XS_DIRECTORY: "DIRECTORY", XS_READ: "READ",
    XS_GET_PERMS: "GET_PERMS", XS_WATCH: "WATCH", XS_UNWATCH: "UNWATCH",
    XS_TRANSACTION_START: "TRANSACTION_START", XS_TRANSACTION_END: "TRANSACTION_END",
    XS_INTRODUCE: "INTRODUCE", XS_RELEASE: "RELEASE", XS_GET_DOMAIN_PATH: "GET_DOMAIN_PATH",
    XS_WRITE: "WRITE", XS_MKDIR: "MKDIR", XS_RM: "RM", XS_SET_PERMS: "SET_PERMS",
    XS_WATCH_EVENT: "WATCH_EVENT", XS_ERROR: "ERROR",
    XS_IS_DOMAIN_INTRODUCED: "IS_DOMAIN_INTRODUCED", XS_RESUME: "RESUME",
    XS_SET_TARGET: "SET_TARGET", XS_RESTRICT: "RESTRICT", XS_RESET_WATCHES: "RESET_WATCHES",
    XS_DIRECTORY_PART: "DIRECTORY_PART",
}


def op_name(op):
    return OP_NAMES.get(op, "OP%d" % op)


class XsError(Exception):
    """An error reply: ``code`` is the errno name sent on the wire (``EACCES``...)."""

    def __init__(self, code, detail=""):
        Exception.__init__(self, code if not detail else "%s (%s)" % (code, detail))
        self.code = code


def pack(op, req_id, tx_id, payload):
    return HEADER.pack(op, req_id, tx_id, len(payload)) + payload


def split_strings(payload):
    """Split a payload of nul-terminated strings. Returns (strings, complete) where
    ``complete`` tells whether the payload ended with a nul (no trailing junk)."""
    parts = payload.split(b"\0")
    trailing = parts.pop()
    return parts, trailing == b""
