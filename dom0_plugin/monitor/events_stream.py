"""Docker's event stream (``GET /events``) read without blocking, on the monitor's loop.

The request answers of the monitor go through docker_api.DockerClient (in worker
threads); only this long-lived stream is read on the event loop, so that one loop can
follow hundreds of VMs. Same bounds as docker_api: header sizes, one event at most
docker_api.MAX_EVENT_BYTES, every line capped.
"""
import json
import re
from urllib.parse import urlencode

from dom0_plugin import docker_api, validate
from xsc_contract import docker_events as events
from dom0_plugin.errors import DockerError, DockerUnavailable, ProtocolError, ResponseTooLarge

_READ_SIZE = 65536
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9])(?: .*)?")
_CHUNK_SIZE = re.compile(rb"[0-9a-fA-F]{1,8}")


class _Reader(object):
    """A buffer over an async ``read(n)`` (b"" at end of stream)."""

    def __init__(self, read, vm):
        self._read = read
        self.vm = vm
        self.buffer = bytearray()

    async def fill(self):
        data = await self._read(_READ_SIZE)
        if not data:
            return False
        self.buffer.extend(data)
        return True

    async def line(self, limit):
        start = 0
        while True:
            end = self.buffer.find(b"\n", start)
            if 0 <= end <= limit:
                text = bytes(self.buffer[:end])
                del self.buffer[:end + 1]
                return text[:-1] if text.endswith(b"\r") else text
            if end > limit or len(self.buffer) > limit:
                raise ProtocolError(self.vm, "a line of Docker's event stream is longer "
                                    "than %d bytes" % limit)
            start = len(self.buffer)
            if not await self.fill():
                raise DockerUnavailable(self.vm, "the Docker event stream ended")

    async def some(self, most):
        if not self.buffer and not await self.fill():
            return b""
        data = bytes(self.buffer[:most])
        del self.buffer[:most]
        return data


def request_bytes(api_version, filters):
    """The HTTP request that opens the stream of events matching ``filters``."""
    query = urlencode({"filters": json.dumps(filters, sort_keys=True)})
    return ("GET /v%d.%d/events?%s HTTP/1.1\r\nHost: docker\r\n"
            "User-Agent: xscontainer-ng-monitor\r\nAccept: application/json\r\n\r\n"
            % (api_version[0], api_version[1], query)).encode("ascii")


class EventStream(object):
    """Decoded events (dicts) of one open ``/events`` answer."""

    def __init__(self, read, vm):
        self.reader = _Reader(read, vm)
        self.vm = vm
        self.chunked = False
        self.chunk_left = 0
        self.line = bytearray()
        self.pending = []       # events decoded but not yet returned
        self.ended = False

    async def read_head(self):
        """Read the status line and headers; raise on anything but 200."""
        line = await self.reader.line(docker_api.MAX_LINE_BYTES)
        found = _STATUS_LINE.fullmatch(line)
        if not found:
            raise ProtocolError(self.vm, "not an HTTP status line from the Docker API: %s"
                                % validate.guest_text(line, 80))
        status = int(found.group(1))
        headers = {}
        total = 0
        for _ in range(docker_api.MAX_HEADERS + 1):
            line = await self.reader.line(docker_api.MAX_LINE_BYTES)
            total += len(line)
            if not line:
                break
            if total > docker_api.MAX_HEAD_BYTES:
                raise ProtocolError(self.vm, "headers of the event stream are too large")
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        else:
            raise ProtocolError(self.vm, "too many headers in the event stream's answer")
        if status != 200:
            body = await self.reader.some(4096)
            raise DockerError(status, validate.guest_text(body, 300) or "(no message)")
        self.chunked = b"chunked" in headers.get(b"transfer-encoding", b"")

    async def _body_piece(self):
        """The next bytes of the body; b"" at its end."""
        if not self.chunked:
            return await self.reader.some(_READ_SIZE)
        if self.chunk_left == 0:
            size = await self.reader.line(docker_api.MAX_LINE_BYTES)
            size = size.split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size):
                raise ProtocolError(self.vm, "bad chunk size in Docker's event stream")
            self.chunk_left = int(size, 16)
            if self.chunk_left == 0:
                return b""
        data = await self.reader.some(min(self.chunk_left, _READ_SIZE))
        if not data:
            raise DockerUnavailable(self.vm, "the Docker event stream ended mid-chunk")
        self.chunk_left -= len(data)
        if self.chunk_left == 0:
            if await self.reader.line(2):
                raise ProtocolError(self.vm, "chunk longer than announced in Docker's "
                                    "event stream")
        return data

    def _split(self, data):
        start = 0
        while True:
            end = data.find(b"\n", start)
            part = data[start:] if end < 0 else data[start:end]
            if len(self.line) + len(part) > docker_api.MAX_EVENT_BYTES:
                raise ResponseTooLarge(self.vm, "one Docker event", docker_api.MAX_EVENT_BYTES)
            self.line.extend(part)
            if end < 0:
                return
            start = end + 1
            self._decode()

    def _decode(self):
        text = bytes(self.line).strip()
        del self.line[:]
        if not text:
            return
        try:
            event = json.loads(text.decode("utf-8", "replace"))
        except ValueError:
            raise ProtocolError(self.vm, "an event of Docker's event stream is not JSON")
        if not isinstance(event, dict):
            raise ProtocolError(self.vm, "an event of Docker's event stream is not an object")
        self.pending.append(event)

    async def next(self):
        """The next event (a dict), or None when the stream ended."""
        while not self.pending:
            if self.ended:
                return None
            data = await self._body_piece()
            if not data:
                self._decode()
                self.ended = True
                continue
            self._split(data)
        return self.pending.pop(0)


FILTERS = {"type": ["container", "image", "daemon"]}


def describe(event):
    """(container id or None, action, changes ps, changes info) for one Docker event."""
    container_id, action = events.container_action(event)
    kind = event.get("Type") or ("container" if "status" in event else None)
    if kind == "container":
        return (container_id, action, action in events.LIST_ACTIONS,
                action in events.INFO_ACTIONS)
    return None, action, False, kind in ("image", "daemon")


def classify(event):
    """(container id or None, changes ps, changes info) for one Docker event."""
    container_id, _, ps, info = describe(event)
    return container_id, ps, info
