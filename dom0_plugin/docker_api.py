"""A Docker Engine API client over one byte stream.

The stream is anything with ``sendall``, ``recv``, ``settimeout`` and ``close``: a Unix
socket, a paramiko Channel running ``docker system dial-stdio``, a monitor's socket.
HTTP/1.1 with keep-alive on that one stream; when it is closed or broken the client
calls the ``connect()`` it was given for a new one.

Everything a guest sends is bounded: header sizes, body sizes (ResponseTooLarge past the
limit, never an unbounded read), event line lengths, and every request has a deadline.
A client is not thread-safe, and a connection that streams events serves nothing else.
"""

import collections
import errno
import json
import re
import socket
import time
from urllib.parse import quote, urlencode

from dom0_plugin import __version__
from dom0_plugin import validate
from dom0_plugin.errors import (ApiVersionUnsupported, DockerError, DockerUnavailable,
                                InvalidArgument,
                                NoSuchContainer, ProtocolError, ResponseTooLarge,
                                Timeout, XscError)

# Engine API versions we speak. 1.24 is Docker 1.12; 20.10 speaks 1.41.
MIN_API_VERSION = (1, 24)
# the newest API the suite runs against (Debian unstable's docker.io 28: API 1.51)
MAX_API_VERSION = (1, 51)

DEFAULT_TIMEOUT = 30.0          # seconds for one request, answer included
MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_ERROR_BODY_BYTES = 64 * 1024
MAX_LINE_BYTES = 8 * 1024       # status line, one header, one chunk-size line
MAX_HEAD_BYTES = 64 * 1024      # all headers of one response
MAX_HEADERS = 100
MAX_EVENT_BYTES = 64 * 1024     # one JSON event of the /events stream
LOGS_MAX_BYTES = 1024 * 1024    # default: the last 1 MiB of output is kept
LOGS_MAX_BYTES_LIMIT = 16 * 1024 * 1024
LOGS_READ_LIMIT = 64 * 1024 * 1024  # stop reading a log stream past this
STOP_GRACE_SECONDS = 10         # Docker's default for stop/restart

_RECV_SIZE = 65536
_VERSION_RE = re.compile(r"([0-9]{1,4})\.([0-9]{1,4})")
_CHUNK_SIZE_RE = re.compile(rb"[0-9a-fA-F]{1,12}")
_STREAM_NAMES = {0: "stdin", 1: "stdout", 2: "stderr", 3: "system"}

Logs = collections.namedtuple("Logs", "frames truncated")
Logs.__doc__ = """Container output: ``frames`` is a list of (stream, text) in order, stream
being "stdout" or "stderr" ("stdout" for a TTY container); ``truncated`` is True when
older output was left out to stay within max_bytes."""

Stats = collections.namedtuple(
    "Stats", "cpu_percent online_cpus memory_usage memory_limit memory_percent "
             "network_rx network_tx block_read block_write pids")
Stats.__doc__ = """One-shot resource summary of a container. Byte counts are ints;
cpu_percent and memory_percent are floats, or None when Docker gave no basis for
them (cpu_percent needs two samples: see DockerClient.stats)."""


def parse_api_version(text):
    """``"1.41"`` -> ``(1, 41)``; None when it is not a version."""
    found = _VERSION_RE.fullmatch(text) if isinstance(text, str) else None
    return (int(found.group(1)), int(found.group(2))) if found else None


def unix_connector(path, connect_timeout=5.0):
    """A ``connect()`` for DockerClient that opens the Unix socket at ``path``."""
    def connect():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(connect_timeout)
            sock.connect(path)
        except BaseException:
            sock.close()
            raise
        return sock
    return connect


class _StaleConnection(Exception):
    """The peer closed the connection before answering: safe to retry on a new one."""


class _Response(object):
    """Status and headers of one answer; the body is read through the connection."""

    def __init__(self, status, reason, headers, framing, length, keep_alive):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.framing = framing      # "none", "length", "chunked" or "close"
        self.length = length
        self.keep_alive = keep_alive
        self.complete = framing == "none"


class _Connection(object):
    """HTTP/1.1 on one stream. Every read honours ``self.deadline`` (None: wait)."""

    def __init__(self, stream, vm):
        self.stream = stream
        self.vm = vm
        self.buffer = bytearray()
        self.answered = 0          # complete responses read on this stream
        self.deadline = None
        self.what = ""
        self._at_start = False     # nothing received yet for the current request

    def close(self):
        # shutdown() first: it wakes a thread blocked in recv() on this stream.
        for action in ("shutdown", "close"):
            try:
                if action == "shutdown":
                    self.stream.shutdown(socket.SHUT_RDWR)
                else:
                    self.stream.close()
            except Exception:  # already broken or not a socket: nothing more to do
                pass

    # -- low level ----------------------------------------------------------------
    def _set_timeout(self):
        if self.deadline is None:
            self.stream.settimeout(None)
            return
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout(self.vm, self.what)
        self.stream.settimeout(remaining)

    def _fill(self):
        """Read more bytes into the buffer; False at end of stream."""
        self._set_timeout()
        try:
            data = self.stream.recv(_RECV_SIZE)
        except socket.timeout:
            raise Timeout(self.vm, self.what)
        except OSError as error:
            if not self.buffer and self._at_start:
                raise _StaleConnection(str(error))
            raise DockerUnavailable(self.vm, "connection to the Docker API lost during "
                                    "{0}: {1}".format(self.what, _os_reason(error)))
        if not data:
            return False
        self.buffer.extend(data)
        self._at_start = False
        return True

    def _eof_error(self):
        return DockerUnavailable(self.vm, "the Docker API closed the connection in the "
                                 "middle of the answer to " + self.what)

    def read_line(self, limit):
        """One line without its CRLF (a bare LF is accepted too)."""
        start = 0
        while True:
            end = self.buffer.find(b"\n", start)
            if end >= 0:
                if end > limit:
                    break
                line = bytes(self.buffer[:end])
                del self.buffer[:end + 1]
                return line[:-1] if line.endswith(b"\r") else line
            if len(self.buffer) > limit:
                break
            start = len(self.buffer)
            if not self._fill():
                if self._at_start:
                    raise _StaleConnection("closed before answering")
                raise self._eof_error()
        raise ProtocolError(self.vm, "a line of the answer to {0} is longer than {1} "
                            "bytes".format(self.what, limit))

    def read_some(self, most):
        """Up to ``most`` bytes (at least one); b"" at end of stream."""
        if not self.buffer and not self._fill():
            return b""
        data = bytes(self.buffer[:most])
        del self.buffer[:most]
        return data

    # -- requests and answers -----------------------------------------------------
    def send(self, method, target, body, headers):
        self._at_start = True
        lines = ["{0} {1} HTTP/1.1".format(method, target), "Host: docker",
                 "User-Agent: xscontainer-ng/" + __version__,
                 "Accept: application/json"]
        for name, value in headers:
            lines.append("{0}: {1}".format(name, value))
        if body is not None or method in ("POST", "PUT"):
            lines.append("Content-Length: {0}".format(len(body or b"")))
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + (body or b"")
        self._set_timeout()
        try:
            self.stream.sendall(data)
        except socket.timeout:
            raise Timeout(self.vm, self.what)
        except OSError as error:
            raise _StaleConnection(str(error))

    def read_head(self, method):
        """Status line and headers of the next final (non-1xx) answer."""
        head_bytes = 0
        while True:
            line = self.read_line(MAX_LINE_BYTES)
            parts = line.split(None, 2)
            if (len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0")
                    or not re.fullmatch(rb"[1-5][0-9][0-9]", parts[1])):
                raise ProtocolError(self.vm, "not an HTTP status line in the answer to "
                                    "{0}: {1}".format(self.what, validate.guest_text(line, 80)))
            http10 = parts[0] == b"HTTP/1.0"
            status = int(parts[1])
            reason = validate.guest_text(parts[2] if len(parts) > 2 else b"", 200)
            headers = {}
            lines = 0
            while True:
                line = self.read_line(MAX_LINE_BYTES)
                head_bytes += len(line) + 2
                lines += 1
                if not line:
                    break
                if lines > MAX_HEADERS or head_bytes > MAX_HEAD_BYTES:
                    raise ProtocolError(self.vm, "too many headers in the answer to "
                                        + self.what)
                name, colon, value = line.partition(b":")
                if not colon or not name.strip():
                    raise ProtocolError(self.vm, "malformed header in the answer to "
                                        "{0}: {1}".format(self.what,
                                                          validate.guest_text(line, 80)))
                key = name.strip().decode("latin-1").lower()
                value = value.strip().decode("latin-1")
                if key in headers:
                    if key == "content-length" and headers[key] != value:
                        raise ProtocolError(self.vm, "conflicting Content-Length headers")
                    if key != "content-length":
                        headers[key] = headers[key] + ", " + value
                else:
                    headers[key] = value
            if 100 <= status < 200 and status != 101:
                continue  # 100 Continue and friends: the real answer follows
            return self._response(method, status, reason, headers, http10)

    def _response(self, method, status, reason, headers, http10):
        tokens = [t.strip().lower() for t in headers.get("connection", "").split(",")]
        keep_alive = not http10 and "close" not in tokens
        encodings = [t.strip().lower() for t in
                     headers.get("transfer-encoding", "").split(",") if t.strip()]
        length = None
        if method == "HEAD" or status in (204, 304) or status < 200:
            framing = "none"
        elif encodings and encodings[-1] == "chunked":
            framing = "chunked"
        elif "content-length" in headers:
            value = headers["content-length"]
            if not re.fullmatch(r"[0-9]{1,15}", value):
                raise ProtocolError(self.vm, "bad Content-Length in the answer to "
                                    + self.what)
            framing, length = "length", int(value)
        else:
            framing, keep_alive = "close", False
        return _Response(status, reason, headers, framing, length, keep_alive)

    def iter_body(self, response):
        """Yield the body of ``response`` in pieces, as they arrive."""
        if response.framing == "length":
            remaining = response.length
            while remaining:
                data = self.read_some(min(remaining, _RECV_SIZE))
                if not data:
                    raise self._eof_error()
                remaining -= len(data)
                yield data
        elif response.framing == "chunked":
            while True:
                line = self.read_line(MAX_LINE_BYTES)
                size_text = line.split(b";", 1)[0].strip()
                if not _CHUNK_SIZE_RE.fullmatch(size_text):
                    raise ProtocolError(self.vm, "bad chunk size in the answer to "
                                        + self.what)
                remaining = int(size_text, 16)
                if remaining == 0:
                    for _ in range(MAX_HEADERS + 1):  # trailers, then an empty line
                        if not self.read_line(MAX_LINE_BYTES):
                            break
                    else:
                        raise ProtocolError(self.vm, "too many trailers")
                    break
                while remaining:
                    data = self.read_some(min(remaining, _RECV_SIZE))
                    if not data:
                        raise self._eof_error()
                    remaining -= len(data)
                    yield data
                if self.read_line(2):
                    raise ProtocolError(self.vm, "chunk longer than announced in the "
                                        "answer to " + self.what)
        elif response.framing == "close":
            while True:
                data = self.read_some(_RECV_SIZE)
                if not data:
                    break
                yield data
        response.complete = True
        if response.keep_alive:
            self.answered += 1


def _os_reason(error):
    """Words for a connection failure of the Docker socket or stream."""
    code = getattr(error, "errno", None)
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied on the Docker API socket ({0})".format(error)
    if code in (errno.ENOENT, errno.ECONNREFUSED):
        return "the Docker daemon is not running ({0})".format(error)
    return validate.guest_text(str(error) or type(error).__name__, 300)


def _error_message(body):
    """Docker's ``{"message": ...}`` or the raw text, made safe to show."""
    try:
        message = json.loads(body.decode("utf-8", "replace")).get("message")
    except (ValueError, AttributeError):
        message = None
    text = message if isinstance(message, str) else body
    return validate.guest_text(text, 500) or "(no message)"


def _number(value):
    """A non-negative int from an untrusted JSON value (0 when it is not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    if value != value or value < 0 or value > 2 ** 63:
        return 0
    return int(value)


def _get(mapping, *path):
    for key in path:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def summarise_stats(raw):
    """Stats from one answer of ``GET /containers/{id}/stats?stream=false``."""
    if not isinstance(raw, dict):
        raise ValueError("stats answer is not a JSON object")
    cpu, precpu = raw.get("cpu_stats"), raw.get("precpu_stats")
    online = _number(_get(cpu, "online_cpus"))
    if not online:
        percpu = _get(cpu, "cpu_usage", "percpu_usage")
        online = len(percpu) if isinstance(percpu, list) and percpu else 1
    cpu_percent = None
    cpu_delta = (_number(_get(cpu, "cpu_usage", "total_usage"))
                 - _number(_get(precpu, "cpu_usage", "total_usage")))
    system_delta = (_number(_get(cpu, "system_cpu_usage"))
                    - _number(_get(precpu, "system_cpu_usage")))
    if _number(_get(precpu, "system_cpu_usage")) and system_delta > 0 and cpu_delta >= 0:
        cpu_percent = round(100.0 * cpu_delta / system_delta * online, 2)

    memory = raw.get("memory_stats")
    usage = _number(_get(memory, "usage"))
    # What `docker stats` shows: page cache that can be reclaimed is not "used".
    details = _get(memory, "stats") or {}
    for key in ("total_inactive_file", "inactive_file"):
        inactive = _number(_get(details, key))
        if inactive:
            usage = usage - inactive if inactive < usage else usage
            break
    limit = _number(_get(memory, "limit"))
    memory_percent = round(100.0 * usage / limit, 2) if limit else None

    rx = tx = 0
    networks = raw.get("networks")
    if isinstance(networks, dict):
        for counters in list(networks.values())[:256]:
            rx += _number(_get(counters, "rx_bytes"))
            tx += _number(_get(counters, "tx_bytes"))

    read = write = 0
    entries = _get(raw, "blkio_stats", "io_service_bytes_recursive")
    if isinstance(entries, list):
        for entry in entries[:4096]:
            op = str(_get(entry, "op") or "").lower()
            if op == "read":
                read += _number(_get(entry, "value"))
            elif op == "write":
                write += _number(_get(entry, "value"))

    return Stats(cpu_percent, online, usage, limit, memory_percent, rx, tx, read, write,
                 _number(_get(raw, "pids_stats", "current")))


class DockerClient(object):
    """Docker Engine API calls over one stream, reconnecting with ``connect()``.

    ``vm`` names the VM in errors. ``timeout`` bounds each request (seconds);
    ``max_body`` bounds each answer (bytes).
    """

    def __init__(self, connect=None, stream=None, vm="", timeout=DEFAULT_TIMEOUT,
                 max_body=MAX_BODY_BYTES):
        if connect is None and stream is None:
            raise ValueError("DockerClient needs a stream or a connect() callable")
        self._connect = connect
        self.vm = vm
        self.timeout = timeout
        self.max_body = max_body
        self.api_version = None         # negotiated (major, minor)
        self.connections_opened = 0
        self._conn = _Connection(stream, vm) if stream is not None else None
        self._streaming = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Close the stream; the next request reconnects (when connect() was given)."""
        self._drop()

    def _drop(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _open(self):
        if self._conn is not None:
            return self._conn
        if self._connect is None:
            raise DockerUnavailable(self.vm, "the connection to the Docker API is closed")
        try:
            stream = self._connect()
        except XscError:
            raise
        except socket.timeout:
            raise Timeout(self.vm, "a connection to the Docker API")
        except OSError as error:
            raise DockerUnavailable(self.vm, _os_reason(error))
        self._conn = _Connection(stream, self.vm)
        self.connections_opened += 1
        return self._conn

    # -- HTTP exchange -------------------------------------------------------------
    def _start(self, method, path, query=None, body=None, timeout=None):
        """Send a request and read the head of its answer: (connection, response).

        A request that found the kept-alive stream closed by the peer is sent once
        more on a new stream.
        """
        if self._streaming:
            raise RuntimeError("this DockerClient is streaming events; use another one")
        target = path + ("?" + urlencode(query) if query else "")
        headers = []
        if body is not None:
            body = json.dumps(body).encode("utf-8")
            headers.append(("Content-Type", "application/json"))
        for attempt in (1, 2):
            conn = self._open()
            reused = conn.answered > 0
            conn.what = "{0} {1}".format(method, path)
            conn.deadline = time.monotonic() + (timeout or self.timeout)
            try:
                conn.send(method, target, body, headers)
                return conn, conn.read_head(method)
            except _StaleConnection as error:
                self._drop()
                if reused and attempt == 1 and self._connect is not None:
                    continue
                raise DockerUnavailable(self.vm, "the Docker API closed the connection "
                                        "without answering {0} {1} ({2})".format(
                                            method, path, validate.guest_text(str(error), 200)))
            except BaseException:
                self._drop()
                raise

    def _read_body(self, conn, response, limit):
        """The whole body (bytes), at most ``limit`` bytes."""
        if response.framing == "length" and response.length > limit:
            self._drop()
            raise ResponseTooLarge(self.vm, conn.what, limit)
        data = bytearray()
        try:
            for piece in conn.iter_body(response):
                data.extend(piece)
                if len(data) > limit:
                    raise ResponseTooLarge(self.vm, conn.what, limit)
        except BaseException:
            self._drop()
            raise
        self._release(response)
        return bytes(data)

    def _release(self, response):
        if not (response.complete and response.keep_alive):
            self._drop()

    def _call(self, method, path, query=None, body=None, timeout=None, container=None):
        """Request and whole answer: (status, body bytes); errors raised as XscError.

        ``container`` is the reference in the path: its 404 is NoSuchContainer.
        """
        conn, response = self._start(method, path, query, body, timeout)
        if response.status >= 400:
            data = self._read_body(conn, response, MAX_ERROR_BODY_BYTES)
            if response.status == 404 and container is not None:
                raise NoSuchContainer(self.vm, container)
            raise DockerError(response.status, _error_message(data))
        return response.status, self._read_body(conn, response, self.max_body)

    def _json(self, method, path, query=None, container=None, expect=dict, timeout=None):
        _, data = self._call(method, path, query, timeout=timeout, container=container)
        try:
            value = json.loads(data.decode("utf-8", "replace"))
        except ValueError:
            raise ProtocolError(self.vm, "the answer to {0} {1} is not JSON".format(
                method, path))
        if not isinstance(value, expect):
            raise ProtocolError(self.vm, "the answer to {0} {1} is not a JSON {2}".format(
                method, path, "object" if expect is dict else "list"))
        return value

    # -- API version ---------------------------------------------------------------
    def _path(self, path):
        if self.api_version is None:
            self.version()
        return "/v{0}.{1}{2}".format(self.api_version[0], self.api_version[1], path)

    def _negotiate(self, version):
        highest = parse_api_version(version.get("ApiVersion"))
        lowest = parse_api_version(version.get("MinAPIVersion")) or (1, 12)
        if highest is None:
            raise ProtocolError(self.vm, "GET /version gave no ApiVersion")
        chosen = min(highest, MAX_API_VERSION)
        if highest < MIN_API_VERSION or lowest > chosen:
            raise ApiVersionUnsupported(self.vm, "%d.%d-%d.%d" % (lowest + highest),
                                        "%d.%d-%d.%d" % (MIN_API_VERSION + MAX_API_VERSION))
        self.api_version = chosen

    def version(self):
        """Docker's ``GET /version`` (unversioned); also picks the API version."""
        version = self._json("GET", "/version")
        if self.api_version is None:
            self._negotiate(version)
        return version

    # -- reading ---------------------------------------------------------------------
    def info(self):
        """Docker's ``GET /info``."""
        return self._json("GET", self._path("/info"))

    def ps(self, all=True, filters=None):
        """Docker's ``GET /containers/json`` (every container when ``all``).

        ``filters``: Docker's list filters, e.g. {"id": [full ids]} (see _check_filters).
        """
        query = {"all": "1" if all else "0"}
        if filters:
            query["filters"] = json.dumps(_check_filters(filters), sort_keys=True)
        return self._json("GET", self._path("/containers/json"), query, expect=list)

    def _container_path(self, ref, suffix):
        ref = validate.container_ref(ref)
        return ref, self._path("/containers/{0}/{1}".format(quote(ref, safe=""), suffix))

    def inspect(self, ref):
        """Docker's ``GET /containers/{ref}/json``."""
        ref, path = self._container_path(ref, "json")
        return self._json("GET", path, container=ref)

    def resolve(self, ref):
        """The full id of the container named by a name, an id prefix or a full id."""
        container_id = self.inspect(ref).get("Id")
        if not validate.is_full_id(container_id):
            raise ProtocolError(self.vm, "Docker gave no valid Id for container " + ref)
        return container_id

    def top(self, ref):
        """Docker's ``GET /containers/{ref}/top``: {"Titles": [...], "Processes": [[...]]}."""
        ref, path = self._container_path(ref, "top")
        return self._json("GET", path, container=ref)

    def stats(self, ref, one_shot=True):
        """A Stats summary of the container.

        ``one_shot``: one sample, answered at once (``one-shot=true`` from API 1.41);
        cpu_percent is then None. Otherwise Docker takes two samples about a second
        apart and cpu_percent is known.
        """
        ref, path = self._container_path(ref, "stats")
        query = {"stream": "false"}
        if one_shot and self.api_version >= (1, 41):
            query["one-shot"] = "true"
        return summarise_stats(self._json("GET", path, query, container=ref))

    def logs(self, ref, tail="all", since=None, max_bytes=LOGS_MAX_BYTES):
        """The container's output (a Logs): the last ``max_bytes`` bytes at most.

        ``tail``: lines from the end (0..10000) or "all"; ``since``: Unix seconds.
        """
        tail = validate.logs_tail(tail)
        since = validate.logs_since(since)
        if (isinstance(max_bytes, bool) or not isinstance(max_bytes, int)
                or not 0 < max_bytes <= LOGS_MAX_BYTES_LIMIT):
            raise InvalidArgument(
                "max_bytes", "must be between 1 and {0}".format(LOGS_MAX_BYTES_LIMIT))
        details = self.inspect(ref)
        tty = bool(_get(details, "Config", "Tty"))
        container_id = details.get("Id") if validate.is_full_id(details.get("Id")) else ref
        query = [("stdout", "1"), ("stderr", "1"), ("tail", str(tail))]
        if since is not None:
            query.append(("since", str(since)))
        path = self._path("/containers/{0}/logs".format(quote(container_id, safe="")))
        conn, response = self._start("GET", path, query)
        if response.status >= 400:
            data = self._read_body(conn, response, MAX_ERROR_BODY_BYTES)
            if response.status == 404:
                raise NoSuchContainer(self.vm, ref)
            raise DockerError(response.status, _error_message(data))
        kept = _TailBuffer(max_bytes)
        demux = None if tty else _Demultiplexer(self.vm)
        read = 0
        try:
            for piece in conn.iter_body(response):
                read += len(piece)
                if demux is None:
                    kept.add("stdout", piece)
                else:
                    for stream, data in demux.feed(piece):
                        kept.add(stream, data)
                if read > LOGS_READ_LIMIT:
                    kept.truncated = True
                    break
        except BaseException:
            self._drop()
            raise
        self._release(response)
        return Logs(kept.frames(), kept.truncated)

    # -- lifecycle -------------------------------------------------------------------
    def _action(self, ref, verb, query=None, timeout=None):
        ref, path = self._container_path(ref, verb)
        try:
            self._call("POST", path, query, timeout=timeout, container=ref)
        except DockerError as error:
            # pause/unpause fail (409, or 500 on Engine 20.10) where start/stop say
            # 304: check whether the container already is in the wanted state.
            if error.http_status in (409, 500) and verb in ("pause", "unpause"):
                state = self.inspect(ref).get("State") or {}
                if verb == "pause" and state.get("Paused"):
                    return
                if verb == "unpause" and state.get("Running") and not state.get("Paused"):
                    return
            raise

    def start(self, ref):
        """Start the container (already running: success)."""
        self._action(ref, "start")

    def stop(self, ref, grace=None):
        """Stop the container, killing it after ``grace`` seconds (already stopped: ok)."""
        grace = STOP_GRACE_SECONDS if grace is None else int(grace)
        self._action(ref, "stop", {"t": str(grace)}, self.timeout + grace)

    def restart(self, ref, grace=None):
        """Restart the container (stop with ``grace`` seconds, then start)."""
        grace = STOP_GRACE_SECONDS if grace is None else int(grace)
        self._action(ref, "restart", {"t": str(grace)}, self.timeout + grace)

    def pause(self, ref):
        """Pause the container's processes (already paused: success)."""
        self._action(ref, "pause")

    def unpause(self, ref):
        """Resume a paused container (already running and not paused: success)."""
        self._action(ref, "unpause")

    # -- events ----------------------------------------------------------------------
    def events(self, since=None, until=None, filters=None, idle_timeout=None):
        """Docker's event stream: an iterator of decoded JSON event objects.

        ``since``/``until``: Unix seconds; ``filters``: {"type": ["container"], ...}.
        ``idle_timeout``: seconds without any event before Timeout (None: wait).
        The stream occupies this client's connection until the iterator is closed
        or exhausted (with ``until``); one event longer than MAX_EVENT_BYTES raises
        ResponseTooLarge. Closing the client from another thread ends the wait.
        """
        query = []
        if since is not None:
            query.append(("since", str(validate.logs_since(since, "since"))))
        if until is not None:
            query.append(("until", str(validate.logs_since(until, "until"))))
        if filters:
            query.append(("filters", json.dumps(_check_filters(filters))))
        path = self._path("/events")
        conn, response = self._start("GET", path, query)
        if response.status >= 400:
            data = self._read_body(conn, response, MAX_ERROR_BODY_BYTES)
            raise DockerError(response.status, _error_message(data))
        self._streaming = True
        return EventStream(self, self._event_iterator(conn, response, idle_timeout))

    def _end_stream(self):
        if self._streaming:      # the iterator never started: its cleanup never ran
            self._streaming = False
            self._drop()

    def _event_iterator(self, conn, response, idle_timeout):
        line = bytearray()
        finished = False
        try:
            conn.what = "the next Docker event"
            conn.deadline = None if idle_timeout is None else time.monotonic() + idle_timeout
            for piece in conn.iter_body(response):
                start = 0
                while True:
                    end = piece.find(b"\n", start)
                    part = piece[start:] if end < 0 else piece[start:end]
                    if len(line) + len(part) > MAX_EVENT_BYTES:
                        raise ResponseTooLarge(self.vm, "one Docker event", MAX_EVENT_BYTES)
                    line.extend(part)
                    if end < 0:
                        break
                    start = end + 1
                    event = self._decode_event(line)
                    del line[:]
                    if event is not None:
                        yield event
                        conn.deadline = (None if idle_timeout is None
                                         else time.monotonic() + idle_timeout)
            event = self._decode_event(line)
            if event is not None:
                yield event
            finished = True
        finally:
            self._streaming = False
            if finished:
                self._release(response)
            else:
                self._drop()

    def _decode_event(self, line):
        text = bytes(line).strip()
        if not text:
            return None
        try:
            event = json.loads(text.decode("utf-8", "replace"))
        except ValueError:
            raise ProtocolError(self.vm, "an event of the Docker event stream is not JSON")
        if not isinstance(event, dict):
            raise ProtocolError(self.vm, "an event of the Docker event stream is not an "
                                "object")
        return event


class EventStream(object):
    """Iterator of Docker events; close() it (or use ``with``) to free the client."""

    def __init__(self, client, generator):
        self._client = client
        self._generator = generator

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._generator)

    def close(self):
        self._generator.close()
        self._client._end_stream()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check_filters(filters):
    """Docker event filters: {name: [value, ...]} with short plain strings."""
    if not isinstance(filters, dict) or len(filters) > 16:
        raise InvalidArgument("filters", "expected a small dict of lists")
    checked = {}
    for name, values in filters.items():
        if isinstance(values, str):
            values = [values]
        if (not isinstance(name, str) or not re.fullmatch(r"[a-z_.-]{1,32}", name)
                or not isinstance(values, (list, tuple)) or len(values) > 64
                or not all(isinstance(v, str) and len(v) <= 256 for v in values)):
            raise InvalidArgument("filters", "bad filter {0!r}".format(name)[:80])
        checked[name] = list(values)
    return checked


class _Demultiplexer(object):
    """Splits Docker's multiplexed stream: 8-byte headers (stream, 0, 0, 0, size)."""

    def __init__(self, vm):
        self.vm = vm
        self.header = bytearray()
        self.stream = None
        self.remaining = 0

    def feed(self, data):
        """Yield (stream name, bytes) for the payload found in ``data``."""
        view = memoryview(data)
        while len(view):
            if self.remaining:
                piece = view[:self.remaining]
                self.remaining -= len(piece)
                view = view[len(piece):]
                yield self.stream, bytes(piece)
                continue
            need = 8 - len(self.header)
            self.header.extend(view[:need])
            view = view[need:]
            if len(self.header) < 8:
                break
            kind = self.header[0]
            if kind not in _STREAM_NAMES or any(self.header[1:4]):
                raise ProtocolError(self.vm, "bad frame header in the container's log "
                                    "stream")
            self.stream = _STREAM_NAMES[kind]
            self.remaining = int.from_bytes(bytes(self.header[4:8]), "big")
            self.header = bytearray()


class _TailBuffer(object):
    """Keeps the last ``limit`` bytes of (stream, bytes) pieces, in order."""

    def __init__(self, limit):
        self.limit = limit
        self.pieces = collections.deque()
        self.size = 0
        self.truncated = False

    def add(self, stream, data):
        if not data:
            return
        if len(data) > self.limit:
            data = data[-self.limit:]
            self.truncated = True
        if self.pieces and self.pieces[-1][0] == stream:
            self.pieces[-1][1].extend(data)
        else:
            self.pieces.append((stream, bytearray(data)))
        self.size += len(data)
        while self.size > self.limit:
            self.truncated = True
            stream0, first = self.pieces[0]
            extra = self.size - self.limit
            if len(first) <= extra:
                self.pieces.popleft()
                self.size -= len(first)
            else:
                del first[:extra]
                self.size -= extra

    def frames(self):
        return [(stream, bytes(data).decode("utf-8", "replace"))
                for stream, data in self.pieces]
