"""The plugin's fast path: run a Docker request on the monitor's warm connection.

``transport_for`` gives a transport whose ``docker()`` looks like a DockerClient; each
call is one request on the monitor's root-only socket (dom0_plugin/monitor/protocol.py).
When the monitor is not running, does not follow the VM or is not connected to it, the
transport switches to the direct path (a fresh SSH connection) for that call and the
following ones, so plugin calls never depend on the daemon.

``serve_plugin_call`` goes further: the plugin file calls it first thing, and for the
functions the monitor can answer whole (lifecycle and queries of a VM it follows) the
plugin process never imports XenAPI, the plugin library or paramiko: a call then costs
little more than starting Python.

Keep this module light: the standard library only at import, and the cheapest of it
(``_socket``: the ``socket`` module pulls in enum and selectors, 6 ms of a dom0 start).
"""
import _socket
import _thread
import errno
import os
import sys

from dom0_plugin.monitor import protocol

CONNECT_TIMEOUT = 1.0
NAME = "monitor"


class MonitorUnavailable(Exception):
    """The monitor cannot serve this request: use the direct path."""


class PluginFailure(Exception):
    """A plugin call the monitor answered with a XAPI error ``[code, params...]``."""

    def __init__(self, description):
        Exception.__init__(self, *description)
        self.description = description

    def failure(self):
        return list(self.description)


class MonitorConnection(object):
    """One connection to the monitor's socket, opened on first use."""

    def __init__(self, path=protocol.SOCKET_PATH):
        self.path = path
        self.sock = None
        self.buffer = bytearray()

    def _connect(self):
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            sock.connect(self.path)
        except OSError as error:
            sock.close()
            raise MonitorUnavailable("cannot reach the monitor at %s: %s"
                                     % (self.path, error.strerror or error))
        self.sock = sock

    def request(self, vm, verb, args=None):
        """The result of one Docker call; XscError as the monitor reported it."""
        args = dict((k, v) for k, v in (args or {}).items() if v is not None)
        return self._exchange(vm, verb, protocol.request(vm, verb, args),
                              protocol.answer_timeout(verb, args))

    def plugin_call(self, vm, fn, args):
        """The result string of plugin function ``fn`` (PluginFailure: its XAPI error)."""
        if self.sock is None:
            self._connect()
        sent = False
        try:
            self.sock.settimeout(protocol.answer_timeout(fn, {}))
            self.sock.sendall(protocol.plugin_call(vm, fn, args))
            sent = True
            kind, body = self._frame()
        except _socket.timeout:
            self.close()
            if sent:
                raise PluginFailure(["XSCONTAINER_TIMEOUT", vm, "the monitor's answer to "
                                     + fn])
            raise MonitorUnavailable("the monitor did not take the request")
        except (OSError, ValueError) as error:
            self.close()
            raise MonitorUnavailable("the monitor's connection failed: %s" % error)
        if kind == protocol.SUCCESS:
            return body.decode("utf-8", "replace")
        if kind == protocol.FAILURE:
            raise PluginFailure(protocol.parse_netstrings(body))
        raise MonitorUnavailable(body.decode("utf-8", "replace") or "no answer")

    def _frame(self):
        while True:
            header = protocol.frame_length(self.buffer)
            if header is not None:
                start, size = header
                if size > protocol.MAX_ANSWER_BYTES:
                    raise ValueError("answer too large")
                if len(self.buffer) >= start + size + 1:
                    kind = bytes(self.buffer[:1])
                    body = bytes(self.buffer[start:start + size])
                    if self.buffer[start + size:start + size + 1] != b",":
                        raise ValueError("malformed answer")
                    del self.buffer[:start + size + 1]
                    return kind, body
            self._fill()

    def _fill(self):
        data = self.sock.recv(262144)
        if not data:
            raise OSError(errno.ECONNRESET, "the monitor closed the connection")
        self.buffer.extend(data)

    def _exchange(self, vm, verb, message, timeout):
        if self.sock is None:
            self._connect()
        sent = False
        try:
            self.sock.settimeout(timeout)
            self.sock.sendall(protocol.encode(message))
            sent = True
            answer = protocol.decode(self._line())
        except _socket.timeout:
            self.close()
            if sent:
                # the request may be running in the VM: don't run it a second time
                from dom0_plugin.errors import Timeout
                raise Timeout(vm, "the monitor's answer to %s" % verb)
            raise MonitorUnavailable("the monitor did not take the request")
        except (OSError, ValueError) as error:
            self.close()
            raise MonitorUnavailable("the monitor's connection failed: %s" % error)
        if answer.get("ok"):
            return answer.get("result")
        if isinstance(answer.get("error"), list) and answer["error"]:
            from dom0_plugin.errors import from_failure
            raise from_failure(answer["error"])
        raise MonitorUnavailable(answer.get("fallback") or "no answer")

    def _line(self):
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[:end + 1]
                return line
            if len(self.buffer) > protocol.MAX_ANSWER_BYTES:
                raise ValueError("answer too large")
            self._fill()

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        del self.buffer[:]


class MonitorDocker(object):
    """The DockerClient methods the plugin uses, served by the monitor (or, when it
    can't, by the direct transport that ``fallback()`` makes)."""

    def __init__(self, vm, connection, fallback):
        self.vm = vm
        self.connection = connection
        self._fallback = fallback
        self.direct = None          # the fallback transport, once used
        self.fallback_reason = None

    def _call(self, verb, *args, **kwargs):
        if self.direct is None:
            request = dict(kwargs)
            if args:
                request["ref"] = args[0]
            try:
                return self.connection.request(self.vm, verb, request), True
            except MonitorUnavailable as error:
                self.fallback_reason = str(error)
                _log().info("VM %s: monitor fast path not available (%s): connecting "
                            "directly", self.vm, error)
                self.connection.close()
                self.direct = self._fallback()
        return getattr(self.direct.docker(), verb)(*args, **kwargs), False

    def version(self):
        return self._call("version")[0]

    def info(self):
        return self._call("info")[0]

    def ps(self, all=True):
        return self._call("ps", all=all)[0]

    def inspect(self, ref):
        return self._call("inspect", ref)[0]

    def resolve(self, ref):
        return self._call("resolve", ref)[0]

    def top(self, ref):
        return self._call("top", ref)[0]

    def stats(self, ref, one_shot=True):
        from dom0_plugin import docker_api
        result, remote = self._call("stats", ref, one_shot=one_shot)
        return docker_api.Stats(*result) if remote else result

    def logs(self, ref, tail="all", since=None, max_bytes=1024 * 1024):
        from dom0_plugin import docker_api
        result, remote = self._call("logs", ref, tail=tail, since=since, max_bytes=max_bytes)
        if remote:
            frames, truncated = result
            return docker_api.Logs([tuple(f) for f in frames], truncated)
        return result

    def start(self, ref):
        self._call("start", ref)

    def stop(self, ref, grace=None):
        self._call("stop", ref, grace=grace)

    def restart(self, ref, grace=None):
        self._call("restart", ref, grace=grace)

    def pause(self, ref):
        self._call("pause", ref)

    def unpause(self, ref):
        self._call("unpause", ref)

    def close(self):
        self.connection.close()
        if self.direct is not None:
            self.direct.close()


class MonitorTransport(object):
    """A transport (see transports.py) that asks the local monitor first."""

    name = NAME

    def __init__(self, vm_uuid, fallback, path=protocol.SOCKET_PATH):
        self.client = MonitorDocker(vm_uuid, MonitorConnection(path), fallback)

    def docker(self):
        return self.client

    @property
    def used_fallback(self):
        return self.client.direct is not None

    def close(self):
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def transport_for(vm_uuid, fallback, path=protocol.SOCKET_PATH):
    """A MonitorTransport when a monitor socket exists here, else None.

    ``fallback()`` makes the direct transport, used when the monitor can't serve. In
    the monitor itself, a DockerClient lent to this thread (``lend``) is used."""
    lent = _lent.get(_thread.get_ident())
    if lent is not None and lent[0] == vm_uuid:
        return LentTransport(lent[1])
    if not os.path.exists(path):
        return None
    return MonitorTransport(vm_uuid, fallback, path)


# thread id -> (vm uuid, DockerClient): the monitor runs the plugin's own functions on its
# warm connections (monitor/plugin_calls.py)
_lent = {}


class lend(object):
    """``with lend(vm_uuid, docker):`` transports.open_for in this thread gives ``docker``."""

    def __init__(self, vm_uuid, docker):
        self.item = (vm_uuid, docker)

    def __enter__(self):
        _lent[_thread.get_ident()] = self.item
        return self

    def __exit__(self, *exc):
        _lent.pop(_thread.get_ident(), None)


class LentTransport(object):
    """The transport of a lent DockerClient (its owner closes it, not us)."""

    name = NAME

    def __init__(self, docker):
        self._docker = docker

    def docker(self):
        return self._docker

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def _log():
    import logging
    return logging.getLogger(__name__)


# ------------------------------------------------------------------ the plugin's fast path

def _value(node):
    """The Python value of an XML-RPC <value> node of a tiny tree: str, dict, or None for
    types the fast path does not take (the normal path parses those)."""
    tag, children, text = node
    if not children:
        return text
    if len(children) != 1:
        return None
    child_tag, grand, child_text = children[0]
    if child_tag == "string" and not grand:
        return child_text
    if child_tag == "struct":
        out = {}
        for member in grand:
            parts = dict((c[0], c) for c in member[1])
            if member[0] != "member" or "name" not in parts or "value" not in parts:
                return None
            value = _value(parts["value"])
            if value is None:
                return None
            out[parts["name"][2]] = value
        return out
    return None


def parse_method_call(text):
    """(fn, session ref, {args}) of the methodCall xapi passes a plugin, or None when it
    is anything but plain strings (then the normal path, with the full parser, reads it)."""
    from xml.parsers import expat
    root = ("", [], "")
    stack = [root]
    parser = expat.ParserCreate()

    def start(tag, attrs):
        node = (tag, [], "")
        stack[-1][1].append(node)
        stack.append(node)

    def end(tag):
        node = stack.pop()
        parent = stack[-1]
        parent[1][parent[1].index(node)] = (node[0], node[1], "".join(texts.pop()))

    texts = [[]]

    def start_text(tag, attrs):
        texts.append([])
        start(tag, attrs)

    def chars(data):
        texts[-1].append(data)
    parser.StartElementHandler = start_text
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        # xapi passes UTF-8; without a locale Python 3.6 decoded it as ASCII + escapes
        text = os.fsencode(text).decode("utf-8", "replace")
        parser.Parse(text, True)
        call = root[1][0]
        parts = dict((c[0], c) for c in call[1])
        params = [p[1][0] for p in parts["params"][1]]
        fn = parts["methodName"][2]
        session, args = _value(params[0]), _value(params[1])
    except Exception:  # anything odd: the normal path's parser decides
        return None
    if call[0] != "methodCall" or not isinstance(session, str) or not isinstance(args, dict):
        return None
    return fn, session, args


def _escape(text):
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.encode("ascii", "xmlcharrefreplace").decode("ascii")


def _string(text):
    return "<value><string>%s</string></value>" % _escape(text)


def response(status, payload):
    """A plugin's methodResponse: Success with a string, or Failure with [code, ...]."""
    if status == "Success":
        member = "<member><name>Value</name>%s</member>" % _string(payload)
    else:
        member = ("<member><name>ErrorDescription</name><value><array><data>%s</data>"
                  "</array></value></member>" % "".join(_string(p) for p in payload))
    return ("<?xml version='1.0'?>\n<methodResponse><params><param><value><struct>"
            "<member><name>Status</name>%s</member>%s</struct></value></param></params>"
            "</methodResponse>\n" % (_string(status), member))


FAST_FNS = ("start", "stop", "restart", "pause", "unpause", "get_inspect", "get_top",
            "get_ps", "get_info", "get_version", "get_logs", "get_stats")


def serve_plugin_call(argv, path=protocol.SOCKET_PATH, out=None):
    """Answer the plugin call in ``argv`` through the monitor, when it can: True when the
    methodResponse was written to ``out`` (stdout), False to let the plugin run as usual."""
    if len(argv) != 2 or not os.path.exists(path):
        return False
    call = parse_method_call(argv[1])
    if call is None or call[0] not in FAST_FNS:
        return False
    fn, _session, args = call
    vm = args.get("vmuuid")
    if not isinstance(vm, str):
        return False
    connection = MonitorConnection(path)
    try:
        text = response("Success", connection.plugin_call(vm, fn, args))
    except MonitorUnavailable:
        return False
    except PluginFailure as error:
        text = response("Failure", error.failure())
    finally:
        connection.close()
    (out or sys.stdout).write(text)
    (out or sys.stdout).flush()
    return True
