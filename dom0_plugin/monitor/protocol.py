"""The request protocol of the monitor's Unix socket (``/run/xscontainer-monitor.sock``).

The plugin asks the monitor to run a request on the VM's warm connection, over a
root-only (0600) stream socket; several requests may follow each other on one
connection, each answered before the next is read. Two kinds of requests:

1. A plugin function (monitor/plugin_calls.py: lifecycle and queries), sent by the plugin
   process before it imports anything heavy, in netstrings (no json: json pulls in re
   and enum, 7 ms of a dom0 Python start)::

       "P" + netstring(netstring(vm) + netstring(fn) + netstring(key) + netstring(value)...)

   answered by "S" + netstring(result string)               success
            or "F" + netstring(netstring(code) + netstring(param)...)   XAPI error
            or "B" + netstring(why)                         fallback (see below)

   (a netstring is ``<length>:<UTF-8 bytes>,``)

2. One Docker call (a docker_api.DockerClient method with validated arguments), sent by
   transports.open_for's MonitorTransport for the other plugin functions, as one line
   of JSON::

       {"v": 1, "vm": "<vm uuid>", "verb": "top", "args": {"ref": "web"}}

   answered by one line:

       {"ok": true, "result": <JSON>}
       {"ok": false, "error": ["XSCONTAINER_...", "param", ...]}   the plugin raises it
       {"ok": false, "fallback": "<why>"}

A fallback means the monitor cannot serve this VM now (not followed here, not connected,
busy, unknown protocol version, a malformed call): the plugin then does the work itself
(connecting directly), so plugin calls never depend on the daemon.

There is no generic passthrough: only these functions and verbs, with checked
arguments. ``ping`` and ``status`` verbs tell about the monitor itself (no ``vm``).

The plugin imports this module before anything else: standard library only at import.
"""
VERSION = 1
SOCKET_PATH = "/run/xscontainer-monitor.sock"
MAX_REQUEST_BYTES = 64 * 1024
MAX_ANSWER_BYTES = 64 * 1024 * 1024

CONTAINER, BOOL, TAIL, SINCE, INT = "container", "bool", "tail", "since", "int"
_REF = ("ref", CONTAINER, True)

# verb -> arguments (name, kind, required); kinds are checked by check_args
VERBS = {
    "version": (),
    "info": (),
    "ps": (("all", BOOL, False),),
    "inspect": (_REF,),
    "resolve": (_REF,),
    "top": (_REF,),
    "stats": (_REF, ("one_shot", BOOL, False)),
    "logs": (_REF, ("tail", TAIL, False), ("since", SINCE, False), ("max_bytes", INT, False)),
    "start": (_REF,),
    "stop": (_REF, ("grace", INT, False)),
    "restart": (_REF, ("grace", INT, False)),
    "pause": (_REF,),
    "unpause": (_REF,),
}
CONTROL_VERBS = ("ping", "status")
GRACE_MAX = 600
REQUEST_TIMEOUT = 35.0       # what the client waits for an answer (more for stop/restart)

PLUGIN_CALL = b"P"
SUCCESS, FAILURE, FALLBACK = b"S", b"F", b"B"


def check_args(verb, args):
    """The keyword arguments of ``verb`` from a request's ``args``, validated."""
    from dom0_plugin import validate
    from dom0_plugin.errors import InvalidArgument
    if verb not in VERBS:
        raise InvalidArgument("verb", "unknown verb")
    if not isinstance(args, dict):
        raise InvalidArgument("args", "expected an object")
    known = VERBS[verb]
    names = set(a[0] for a in known)
    extra = [k for k in args if k not in names]
    if extra:
        raise InvalidArgument("args", "unexpected argument %s" % str(extra[0])[:40])
    out = {}
    for name, kind, required in known:
        value = args.get(name)
        if value is None:
            if required:
                raise InvalidArgument(name, "missing")
            continue
        if kind == CONTAINER:
            out[name] = validate.container_ref(value, name)
        elif kind == BOOL:
            if not isinstance(value, bool):
                raise InvalidArgument(name, "expected true or false")
            out[name] = value
        elif kind == TAIL:
            out[name] = validate.logs_tail(value, name)
        elif kind == SINCE:
            out[name] = validate.logs_since(value, name)
        else:
            if isinstance(value, bool) or not isinstance(value, int) or not \
                    0 <= value <= 1 << 30:
                raise InvalidArgument(name, "expected a whole number")
            out[name] = value
    if "grace" in out and out["grace"] > GRACE_MAX:
        raise InvalidArgument("grace", "at most %d seconds" % GRACE_MAX)
    return out


def run(client, verb, kwargs):
    """Run a checked request on a DockerClient; the result as JSON values."""
    if "ref" in kwargs:
        ref = kwargs.pop("ref")
        result = getattr(client, verb)(ref, **kwargs)
    else:
        result = getattr(client, verb)(**kwargs)
    if verb == "logs":
        return [[list(frame) for frame in result.frames], bool(result.truncated)]
    if verb == "stats":
        return list(result)
    return result


def answer_timeout(verb, args):
    """How long a client waits for the answer to this request."""
    if verb in ("stop", "restart"):
        grace = args.get("grace")
        return REQUEST_TIMEOUT + (10 if grace is None else int(grace))
    return REQUEST_TIMEOUT


def encode(message):
    """One protocol line (bytes, ASCII JSON, newline-terminated)."""
    import json
    return (json.dumps(message, ensure_ascii=True, separators=(",", ":")) + "\n").encode(
        "ascii")


def decode(line):
    """The message in one line; ValueError when it is not a JSON object."""
    import json
    message = json.loads(line.decode("utf-8"))
    if not isinstance(message, dict):
        raise ValueError("not a JSON object")
    return message


def request(vm, verb, args=None):
    return {"v": VERSION, "vm": vm, "verb": verb, "args": args or {}}




def ok(result):
    return {"ok": True, "result": result}


def error(failure):
    return {"ok": False, "error": [str(x) for x in failure]}


def fallback(reason):
    return {"ok": False, "fallback": str(reason)[:300]}


# ------------------------------------------------------------------ plugin calls (netstrings)

def netstring(text):
    data = text.encode("utf-8", "replace") if isinstance(text, str) else bytes(text)
    return str(len(data)).encode("ascii") + b":" + data + b","


def parse_netstrings(data):
    """The strings of a concatenation of netstrings; ValueError when malformed."""
    out = []
    pos = 0
    while pos < len(data):
        colon = data.index(b":", pos, pos + 11)
        size = int(data[pos:colon])
        end = colon + 1 + size
        if size < 0 or data[end:end + 1] != b",":
            raise ValueError("malformed netstring")
        out.append(data[colon + 1:end].decode("utf-8", "replace"))
        pos = end + 1
    return out


def frame(kind, body):
    """A frame: one kind byte, then the body as a netstring."""
    return kind + netstring(body)


def plugin_call(vm, fn, args):
    """The frame of a plugin call (``args``: the plugin's string arguments)."""
    parts = [netstring(vm), netstring(fn)]
    for key in sorted(args):
        parts.append(netstring(key))
        parts.append(netstring(args[key]))
    return frame(PLUGIN_CALL, b"".join(parts))


def parse_plugin_call(body):
    """(vm, fn, args) of a plugin call frame's body; ValueError when malformed."""
    items = parse_netstrings(body)
    if len(items) < 2 or len(items) % 2:
        raise ValueError("malformed plugin call")
    return items[0], items[1], dict(zip(items[2::2], items[3::2]))


def frame_length(data):
    """(header length, body length) once ``data`` holds a frame's header, else None."""
    colon = data.find(b":", 1, 13)
    if colon < 0:
        if len(data) > 12:
            raise ValueError("malformed frame")
        return None
    return colon + 1, int(data[1:colon])
