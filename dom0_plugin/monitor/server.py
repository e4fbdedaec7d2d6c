"""The monitor's root-only Unix socket: the plugin's fast path (see protocol.py)."""
import asyncio
import logging
import os
import socket
import struct

from dom0_plugin.errors import XscError
from dom0_plugin.monitor import plugin_calls, protocol

log = logging.getLogger(__name__)

MAX_CLIENTS = 64
IDLE_TIMEOUT = 60.0


def _peer_uid(writer):
    sock = writer.get_extra_info("socket")
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _claim(path):
    """Remove a socket file left by a monitor that died; refuse if one is still serving."""
    if not os.path.exists(path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)
        return
    finally:
        probe.close()
    raise RuntimeError("another xscontainer-monitor already serves %s" % path)


class RequestServer(object):
    """Answers the plugin's requests with the followers' warm connections."""

    def __init__(self, manager, path):
        self.manager = manager
        self.path = path
        self.server = None
        self.clients = 0
        self.served = 0

    async def start(self):
        _claim(self.path)
        old = os.umask(0o077)     # the socket is born 0600: root only
        try:
            self.server = await asyncio.start_unix_server(
                self._client, self.path, limit=protocol.MAX_REQUEST_BYTES)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        log.info("serving plugin requests on %s", self.path)

    def close(self):
        if self.server is not None:
            self.server.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    async def _client(self, reader, writer):
        try:
            uid = _peer_uid(writer)
            if uid not in (0, None) or self.clients >= MAX_CLIENTS:
                writer.write(protocol.encode(protocol.fallback(
                    "not allowed" if uid not in (0, None) else "busy")))
                return
            self.clients += 1
            try:
                await self._serve(reader, writer)
            finally:
                self.clients -= 1
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                asyncio.TimeoutError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("error on the request socket")
        finally:
            writer.close()

    async def _serve(self, reader, writer):
        while True:
            first = await asyncio.wait_for(reader.read(1), IDLE_TIMEOUT)
            if not first:
                return
            if first == protocol.PLUGIN_CALL:
                data = await self._plugin_frame(reader)
            else:
                try:
                    line = first + await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT)
                except ValueError:          # longer than the limit
                    writer.write(protocol.encode(protocol.fallback("request too large")))
                    return
                data = protocol.encode(await self.answer(line))
            writer.write(data)
            await writer.drain()

    async def _plugin_frame(self, reader):
        """Read a plugin call frame and return the bytes of its answer frame."""
        header = await asyncio.wait_for(reader.readuntil(b":"), IDLE_TIMEOUT)
        size = int(header[:-1]) if header[:-1].isdigit() and len(header) < 12 else -1
        if not 0 <= size <= protocol.MAX_REQUEST_BYTES:
            raise ConnectionError("bad plugin call frame")
        body = await asyncio.wait_for(reader.readexactly(size + 1), IDLE_TIMEOUT)
        if body[-1:] != b",":
            raise ConnectionError("bad plugin call frame")
        try:
            vm, fn, args = protocol.parse_plugin_call(body[:-1])
        except ValueError:
            return protocol.frame(protocol.FALLBACK, "malformed plugin call")
        kind, payload = await self.plugin_answer(vm, fn, args)
        return protocol.frame(kind, payload)

    async def answer(self, line):
        """The answer (a dict) to one request line."""
        try:
            message = protocol.decode(line)
        except ValueError:
            return protocol.fallback("not a protocol message")
        if message.get("v") != protocol.VERSION:
            return protocol.fallback("protocol version %r not spoken" % message.get("v"))
        verb = message.get("verb")
        if verb == "ping":
            return protocol.ok({"pid": os.getpid()})
        if verb == "status":
            stats = self.manager.stats
            with stats.lock:
                per_vm = dict(stats.per_vm)
            return protocol.ok({"monitor": self.manager.describe(),
                                "vms": [f.describe() for f in
                                        self.manager.followers.values()],
                                "writes_per_vm": per_vm})
        follower = self.manager.followers.get(message.get("vm"))
        if follower is None:
            return protocol.fallback("VM not followed by this host's monitor")
        link = follower.link
        if link is None or not follower.fresh:
            return protocol.fallback("not connected to the VM (%s)" % (follower.reason or
                                                                       "connecting"))
        try:
            kwargs = protocol.check_args(verb, message.get("args") or {})
            result = await link.call(lambda client: protocol.run(client, verb, kwargs))
        except XscError as error:
            return protocol.error(error.failure())
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.exception("VM %s: request %s failed unexpectedly", follower.uuid, verb)
            return protocol.fallback("internal error: %s" % type(error).__name__)
        self.served += 1
        return protocol.ok(result)

    async def plugin_answer(self, vm, fn, args):
        """(frame kind, payload) answering plugin function ``fn`` for VM ``vm``."""
        follower = self.manager.followers.get(vm)
        if follower is None:
            return protocol.FALLBACK, "VM not followed by this host's monitor"
        link = follower.link
        if link is None or not follower.fresh:
            return protocol.FALLBACK, "not connected to the VM (%s)" % (follower.reason or
                                                                        "connecting")
        try:
            args = plugin_calls.check(fn, args)
        except plugin_calls.NotFast as why:
            return protocol.FALLBACK, str(why)
        view = follower.view

        def post(name, body):
            self.manager.outbox.message(follower.uuid, view.ref, "post", name, body)
        try:
            result = await link.call(
                lambda client: plugin_calls.run(fn, args, view, client, post))
        except XscError as error:
            log.info("%s %s (plugin fast path): %s", fn, follower.uuid, error)
            return protocol.FAILURE, b"".join(protocol.netstring(p) for p in error.failure())
        except plugin_calls.NotFast as why:
            return protocol.FALLBACK, str(why)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.exception("VM %s: %s failed unexpectedly", follower.uuid, fn)
            return protocol.FALLBACK, "internal error: %s" % type(error).__name__
        self.served += 1
        log.info("%s %s (plugin fast path): ok", fn, follower.uuid)
        return protocol.SUCCESS, result
