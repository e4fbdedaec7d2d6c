"""The SSH transport: reach a VM's Docker Engine through its sshd and `docker system
dial-stdio` (what Docker's own ssh:// support does), with the VM's host key pinned.

Nothing a caller passes reaches a remote command line: the only commands run in a guest are
the fixed ones in this module.
"""
import base64
import hashlib
import logging
import socket
import time
from collections import namedtuple

from dom0_plugin.errors import (AuthFailed, DockerUnavailable, HostKeyMismatch,
                                HostKeyUnverified, Timeout, VmUnreachable)

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 3.0     # per address: unreachable candidates are skipped quickly
HANDSHAKE_TIMEOUT = 10.0
AUTH_TIMEOUT = 10.0
CHANNEL_TIMEOUT = 10.0
EXEC_OUTPUT_MAX = 64 * 1024
DIAL_STDIO = "docker system dial-stdio"

HostKey = namedtuple("HostKey", "type base64")


def fingerprint(host_key):
    """OpenSSH's SHA256 fingerprint of a host key (what `ssh-keygen -lf` prints)."""
    digest = hashlib.sha256(base64.b64decode(host_key.base64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def parse_pin(text):
    """A pinned key as stored in VM.other_config: '<type> <base64>'."""
    if not text:
        return None
    parts = text.split()
    if len(parts) < 2:
        return None
    return HostKey(parts[0], parts[1])


def format_pin(host_key):
    return "%s %s" % (host_key.type, host_key.base64)


class SshConnection(object):
    """One authenticated SSH connection to a VM (paramiko Transport)."""

    def __init__(self, vm_uuid, addresses, username, pkey=None, password=None, pinned=None,
                 port=22, accept=None):
        """``pinned``: the host key the VM must show. Without one, ``accept(host_key)``
        decides (True, or raises); without either the connection is refused
        (HostKeyUnverified). Either way before any credential is sent."""
        self.vm_uuid = vm_uuid
        self.addresses = list(addresses)
        self.username = username
        self.pkey = pkey
        self.password = password
        self.pinned = pinned
        self.accept = accept
        self.port = port
        self.transport = None
        self.address = None
        self.host_key = None

    # -- connecting
    def open(self):
        import paramiko
        if not self.addresses:
            raise VmUnreachable(self.vm_uuid, "the VM reports no IP address (are its guest "
                                              "tools running?)")
        reasons = []
        for addr in self.addresses:
            try:
                sock = socket.create_connection((addr, self.port), timeout=CONNECT_TIMEOUT)
            except socket.timeout:
                reasons.append("%s: connection timed out" % addr)
                continue
            except OSError as e:
                reasons.append("%s: %s" % (addr, e.strerror or e))
                continue
            self.address = addr
            self._handshake(paramiko, sock)
            self._authenticate(paramiko)
            return self
        raise VmUnreachable(self.vm_uuid, "; ".join(reasons))

    def _handshake(self, paramiko, sock):
        t = paramiko.Transport(sock)
        t.banner_timeout = HANDSHAKE_TIMEOUT
        t.auth_timeout = AUTH_TIMEOUT
        t.handshake_timeout = HANDSHAKE_TIMEOUT
        if self.pinned:
            # ask for the pinned type, so a server holding several keys shows the pinned one
            t.get_security_options().key_types = [self.pinned.type]
        try:
            t.start_client(timeout=HANDSHAKE_TIMEOUT)
        except (paramiko.SSHException, EOFError, OSError) as e:
            t.close()
            if self.pinned and "host key" in str(e).lower():
                raise HostKeyMismatch(self.vm_uuid, fingerprint(self.pinned),
                                      "no %s key offered" % self.pinned.type)
            raise VmUnreachable(self.vm_uuid, "%s: SSH handshake failed: %s"
                                % (self.address, e or type(e).__name__))
        key = t.get_remote_server_key()
        self.host_key = HostKey(key.get_name(), key.get_base64())
        self.transport = t
        if self.pinned and self.host_key != self.pinned:
            t.close()
            raise HostKeyMismatch(self.vm_uuid, fingerprint(self.pinned),
                                  fingerprint(self.host_key))
        if not self.pinned:
            try:
                if self.accept is None or not self.accept(self.host_key):
                    raise HostKeyUnverified(self.vm_uuid, fingerprint(self.host_key))
            except Exception:
                t.close()
                self.transport = None
                raise

    def _authenticate(self, paramiko):
        t = self.transport
        try:
            if self.pkey is not None:
                try:
                    t.auth_publickey(self.username, self.pkey)
                except paramiko.AuthenticationException:
                    if self.password is None:
                        raise
            if not t.is_authenticated() and self.password is not None:
                t.auth_password(self.username, self.password)
        except paramiko.AuthenticationException as e:
            self.close()
            how = "password" if self.pkey is None else "the pool key"
            raise AuthFailed(self.vm_uuid, "user %s: %s refused (%s)"
                             % (self.username, how, type(e).__name__))
        except (paramiko.SSHException, EOFError, OSError) as e:
            self.close()
            raise VmUnreachable(self.vm_uuid, "%s: SSH authentication did not complete: %s"
                                % (self.address, e))

    def alive(self):
        return self.transport is not None and self.transport.is_active()

    def close(self):
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    # -- using
    def _channel(self):
        import paramiko
        try:
            chan = self.transport.open_session(timeout=CHANNEL_TIMEOUT)
        except (paramiko.SSHException, EOFError, OSError) as e:
            raise VmUnreachable(self.vm_uuid, "cannot open an SSH channel: %s" % e)
        return chan

    def run(self, command, timeout=30.0, stdin=None):
        """Run one of this module's fixed commands; returns (exit_status, stdout, stderr)."""
        chan = self._channel()
        chan.settimeout(timeout)
        try:
            chan.exec_command(command)
            if stdin is not None:
                chan.sendall(stdin)
                chan.shutdown_write()
            out, err = _read_all(chan, timeout)
            return chan.recv_exit_status(), out, err
        except socket.timeout:
            raise Timeout(self.vm_uuid, "the command '%s'" % command.split("\n")[0][:60])
        finally:
            chan.close()

    def dial_stdio(self):
        """A byte stream to the VM's Docker Engine API."""
        chan = self._channel()
        chan.exec_command(DIAL_STDIO)
        return DialStdioStream(chan, self.vm_uuid, self.username)


def _read_all(chan, timeout):
    out, err = b"", b""
    deadline = time.time() + timeout
    while not (chan.exit_status_ready() and not chan.recv_ready()
               and not chan.recv_stderr_ready()):
        if time.time() > deadline:
            raise socket.timeout()
        if chan.recv_ready():
            out += chan.recv(65536)[:max(0, EXEC_OUTPUT_MAX - len(out))]
        elif chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)[:max(0, EXEC_OUTPUT_MAX - len(err))]
        else:
            time.sleep(0.005)
    return out, err


def explain_docker_failure(vm_uuid, username, stderr, status):
    """Turn the failure of `docker system dial-stdio` (or `docker version`) into a clear error."""
    text = stderr.decode("utf-8", "replace").lower()
    if "permission denied" in text:
        return DockerUnavailable(vm_uuid, "user %s may not use the Docker socket (permission "
                                          "denied): add it to the 'docker' group" % username)
    if status == 127 or "not found" in text:
        return DockerUnavailable(vm_uuid, "the docker command is not installed for user %s"
                                 % username)
    if "cannot connect" in text or "daemon running" in text or "no such file" in text \
            or "connection refused" in text:
        return DockerUnavailable(vm_uuid, "the Docker daemon is not running")
    first = text.strip().splitlines()[0][:200] if text.strip() else "exit status %s" % status
    return DockerUnavailable(vm_uuid, "docker failed: %s" % first)


class DialStdioStream(object):
    """A paramiko channel running `docker system dial-stdio`, usable as a socket by the Docker
    client. An end of stream before any byte means the CLI failed: say why."""

    def __init__(self, chan, vm_uuid, username):
        self.chan = chan
        self.vm_uuid = vm_uuid
        self.username = username
        self.received = False

    def settimeout(self, t):
        self.chan.settimeout(t)

    def sendall(self, data):
        self.chan.sendall(data)

    def recv(self, n):
        data = self.chan.recv(n)
        if data:
            self.received = True
            return data
        if not self.received:
            deadline = time.time() + 2.0  # the exit status follows the end of output closely
            while not self.chan.exit_status_ready() and time.time() < deadline:
                time.sleep(0.01)
            status = self.chan.recv_exit_status() if self.chan.exit_status_ready() else -1
            err = b""
            while self.chan.recv_stderr_ready():
                err += self.chan.recv_stderr(4096)
            raise explain_docker_failure(self.vm_uuid, self.username, err, status)
        return data

    def close(self):
        self.chan.close()
