"""One VM's SSH connection, held on the monitor's event loop (asyncssh).

A VmLink is one authenticated SSH connection to the VM, pinned to its host key, that
carries:
- the Docker event stream: one ``docker system dial-stdio`` channel read on the loop
  (events_stream);
- requests: up to two more dial-stdio channels, each with a docker_api.DockerClient
  (HTTP keep-alive) driven from the shared worker threads through a blocking bridge.
  They are opened when first needed and closed after ``request_idle`` seconds unused, so
  an idle VM runs one docker CLI process for us, not three.

Nothing here starts a thread: the loop does all the I/O.
"""
import asyncio
import concurrent.futures
import logging
import socket
import threading
import time

import asyncssh

from dom0_plugin import docker_api, ssh_transport, validate
from dom0_plugin.errors import (AuthFailed, DockerUnavailable, HostKeyMismatch, Timeout,
                                VmUnreachable, XscError)
from dom0_plugin.monitor import events_stream

log = logging.getLogger(__name__)

SSH_PORT = 22
STDERR_KEEP = 4096
MAX_REQUEST_CLIENTS = 2
CHANNEL_OPEN_TIMEOUT = 15.0
TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", 18)


def host_key_of(key):
    """ssh_transport.HostKey of an asyncssh public key."""
    parts = key.export_public_key("openssh").decode("ascii").split()
    return ssh_transport.HostKey(parts[0], parts[1])


def _tune(sock, cfg):
    """Let the kernel notice a dead peer (no CPU of ours spent on idle connections)."""
    idle = max(1, int(cfg.tcp_keepalive))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", max(1, idle // 2)),
                          ("TCP_KEEPCNT", 2)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
    try:  # unacknowledged data: give up after the same time
        sock.setsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT, idle * 2000)
    except OSError:
        pass


class _Client(asyncssh.SSHClient):
    """Records the host key the server offered; accepts unknown keys only when asked."""

    def __init__(self, accept_unknown):
        self.accept_unknown = accept_unknown
        self.offered = None

    def validate_host_public_key(self, host, addr, port, key):
        self.offered = key
        return self.accept_unknown


def _reason(error):
    text = str(error) or type(error).__name__
    return validate.guest_text(text, 200)


async def connect(vm, addresses, username, client_key, pinned, cfg):
    """An SshConnection-equivalent: (asyncssh connection, address, HostKey).

    ``pinned``: ssh_transport.HostKey, or None to accept (and report) any key.
    Raises VmUnreachable, HostKeyMismatch or AuthFailed like the plugin's direct path.
    """
    loop = asyncio.get_event_loop()
    if not addresses:
        raise VmUnreachable(vm, "the VM reports no IP address (are its guest tools running?)")
    reasons = []
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            _tune(sock, cfg)
            await asyncio.wait_for(loop.sock_connect(sock, (address, SSH_PORT)),
                                   cfg.connect_timeout)
        except asyncio.TimeoutError:
            sock.close()
            reasons.append("%s: connection timed out" % address)
            continue
        except OSError as error:
            sock.close()
            reasons.append("%s: %s" % (address, error.strerror or error))
            continue
        client = _Client(pinned is None)
        if pinned is not None:
            trusted = [asyncssh.import_public_key("%s %s" % (pinned.type, pinned.base64))]
        else:
            trusted = []
        try:
            conn = await asyncio.wait_for(asyncssh.connect(
                sock=sock, host=address, port=SSH_PORT, username=username,
                client_factory=lambda: client, client_keys=[client_key],
                known_hosts=(trusted, [], []), config=None, agent_path=None,
                password_auth=False, kbdint_auth=False, gss_auth=False,
                host_based_auth=False, preferred_auth="publickey",
                keepalive_interval=cfg.ssh_keepalive or None, keepalive_count_max=3,
                login_timeout=cfg.login_timeout), cfg.login_timeout + 1)
        except asyncssh.HostKeyNotVerifiable:
            sock.close()
            offered = (ssh_transport.fingerprint(host_key_of(client.offered))
                       if client.offered is not None else "no %s key offered" % pinned.type)
            raise HostKeyMismatch(vm, ssh_transport.fingerprint(pinned), offered)
        except asyncssh.KeyExchangeFailed as error:
            sock.close()
            if pinned is not None and "host key" in str(error).lower():
                raise HostKeyMismatch(vm, ssh_transport.fingerprint(pinned),
                                      "no %s key offered" % pinned.type)
            reasons.append("%s: SSH handshake failed: %s" % (address, _reason(error)))
            continue
        except asyncssh.PermissionDenied as error:
            sock.close()
            raise AuthFailed(vm, "user %s: the pool key refused (%s)"
                             % (username, _reason(error)))
        except asyncio.TimeoutError:
            sock.close()
            reasons.append("%s: SSH handshake timed out" % address)
            continue
        except (asyncssh.Error, OSError) as error:
            sock.close()
            reasons.append("%s: SSH handshake failed: %s" % (address, _reason(error)))
            continue
        key = conn.get_server_host_key()
        return conn, address, host_key_of(key)
    raise VmUnreachable(vm, "; ".join(reasons))


class DialStdio(object):
    """One ``docker system dial-stdio`` channel: a byte stream to the VM's Docker API."""

    def __init__(self, process, vm, username):
        self.process = process
        self.vm = vm
        self.username = username
        self.received = False
        self.stderr = bytearray()
        self._stderr_task = asyncio.ensure_future(self._drain_stderr())

    @classmethod
    async def open(cls, conn, vm, username):
        try:
            process = await asyncio.wait_for(
                conn.create_process(ssh_transport.DIAL_STDIO, encoding=None),
                CHANNEL_OPEN_TIMEOUT)
        except asyncio.TimeoutError:
            raise Timeout(vm, "an SSH channel to open")
        except (asyncssh.Error, OSError) as error:
            raise VmUnreachable(vm, "cannot open an SSH channel: %s" % _reason(error))
        return cls(process, vm, username)

    async def _drain_stderr(self):
        try:
            while True:
                data = await self.process.stderr.read(4096)
                if not data:
                    return
                self.stderr.extend(data)
                del self.stderr[:-STDERR_KEEP]
        except (asyncssh.Error, OSError, asyncio.CancelledError):
            return

    async def send(self, data):
        try:
            self.process.stdin.write(data)
            await self.process.stdin.drain()
        except (asyncssh.Error, OSError, BrokenPipeError) as error:
            raise DockerUnavailable(self.vm, "the Docker API channel closed: %s"
                                    % _reason(error))

    async def recv(self, size):
        """Up to ``size`` bytes; b"" at the end. An end before any byte means the docker
        CLI in the VM failed: raise what it said."""
        try:
            data = await self.process.stdout.read(size)
        except (asyncssh.Error, OSError) as error:
            raise DockerUnavailable(self.vm, "the Docker API channel broke: %s"
                                    % _reason(error))
        if data:
            self.received = True
            return data
        if not self.received:
            raise await self._failure()
        return data

    async def _failure(self):
        try:
            await asyncio.wait_for(self.process.wait_closed(), 2.0)
        except (asyncio.TimeoutError, asyncssh.Error, OSError):
            pass
        await asyncio.sleep(0)
        status = self.process.exit_status
        return ssh_transport.explain_docker_failure(
            self.vm, self.username, bytes(self.stderr), -1 if status is None else status)

    def close(self):
        self._stderr_task.cancel()
        try:
            self.process.close()
        except Exception:  # already closed with its connection
            pass


class BridgedStream(object):
    """A DialStdio seen as a blocking socket, for a DockerClient in a worker thread."""

    def __init__(self, loop, dial):
        self.loop = loop
        self.dial = dial
        self.timeout = None

    def _run(self, coro):
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(self.timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise socket.timeout("timed out")

    def settimeout(self, timeout):
        self.timeout = timeout

    def sendall(self, data):
        self._run(self.dial.send(bytes(data)))

    def recv(self, size):
        return self._run(self.dial.recv(size))

    def shutdown(self, how):
        self.close()

    def close(self):
        self.loop.call_soon_threadsafe(self.dial.close)


class VmLink(object):
    """The SSH connection of one VM and the Docker API channels on it."""

    def __init__(self, conn, vm, username, address, host_key, executor, cfg):
        self.conn = conn
        self.vm = vm
        self.username = username
        self.address = address
        self.host_key = host_key
        self.executor = executor
        self.cfg = cfg
        self.loop = asyncio.get_event_loop()
        self.api_version = None
        self.closed = False
        self._idle = []                 # [(DockerClient, last use)]
        self._count = 0
        self._cond = threading.Condition()
        self.events = None

    # -- the event stream (on the loop) ---------------------------------------------
    async def open_events(self):
        """Open the event stream (after api_version is known); returns an EventStream."""
        dial = await DialStdio.open(self.conn, self.vm, self.username)
        self.events = dial
        await dial.send(events_stream.request_bytes(self.api_version,
                                                    events_stream.FILTERS))
        stream = events_stream.EventStream(dial.recv, self.vm)
        await asyncio.wait_for(stream.read_head(), self.cfg.request_timeout)
        return stream

    # -- requests (in worker threads) ---------------------------------------------
    def _connect_sync(self):
        if self.closed:
            raise DockerUnavailable(self.vm, "the connection to the VM was closed")
        future = asyncio.run_coroutine_threadsafe(
            DialStdio.open(self.conn, self.vm, self.username), self.loop)
        try:
            dial = future.result(CHANNEL_OPEN_TIMEOUT + 5)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise Timeout(self.vm, "an SSH channel to open")
        return BridgedStream(self.loop, dial)

    def _take(self):
        deadline = time.monotonic() + self.cfg.request_timeout
        with self._cond:
            while True:
                if self.closed:
                    raise DockerUnavailable(self.vm, "the connection to the VM was closed")
                if self._idle:
                    return self._idle.pop()[0]
                if self._count < MAX_REQUEST_CLIENTS:
                    self._count += 1
                    client = docker_api.DockerClient(connect=self._connect_sync, vm=self.vm,
                                                     timeout=self.cfg.request_timeout)
                    client.api_version = self.api_version
                    return client
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Timeout(self.vm, "a free Docker API channel")
                self._cond.wait(remaining)

    def _give_back(self, client):
        with self._cond:
            if self.closed:
                self._count -= 1
                client.close()
            else:
                self._idle.append((client, time.monotonic()))
            self._cond.notify()

    def call_sync(self, fn):
        """Run ``fn(DockerClient)`` (in a worker thread) on one of this VM's channels."""
        client = self._take()
        try:
            result = fn(client)
            if self.api_version is None and client.api_version is not None:
                self.api_version = client.api_version
            return result
        except XscError:
            raise
        except Exception:
            client.close()
            raise
        finally:
            self._give_back(client)

    async def call(self, fn):
        """Run ``fn(DockerClient)`` in the worker pool; its result or its error."""
        return await self.loop.run_in_executor(self.executor, self.call_sync, fn)

    def close_idle(self, now=None):
        """Close request channels unused for ``request_idle`` seconds."""
        now = time.monotonic() if now is None else now
        with self._cond:
            keep = []
            for client, used in self._idle:
                if now - used >= self.cfg.request_idle:
                    self._count -= 1
                    client.close()
                else:
                    keep.append((client, used))
            self._idle = keep

    def request_channels(self):
        with self._cond:
            return self._count

    def close(self):
        with self._cond:
            self.closed = True
            for client, _ in self._idle:
                self._count -= 1
                client.close()
            self._idle = []
            self._cond.notify_all()
        if self.events is not None:
            self.events.close()
        self.conn.close()

    async def wait_closed(self):
        await self.conn.wait_closed()


def load_client_key(pem):
    """The pool's private key (OpenSSH PEM text) as an asyncssh key."""
    return asyncssh.import_private_key(pem)


def public_key_line(key):
    return key.export_public_key("openssh").decode("ascii").strip()

