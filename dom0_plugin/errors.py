"""XscError: a failure with a code callers can match and a message a person can act on.

The plugin turns an XscError into the XAPI failure ``[code] + params`` (all strings).
"""

from dom0_plugin import constants as C

# What to tell a person for each code; fields are the params in order.
_MESSAGES = {
    C.ERR_INVALID_ARGUMENT: (
        ("name", "reason"),
        "Invalid argument '{name}': {reason}."),
    C.ERR_NO_SUCH_VM: (
        ("vm",),
        "There is no VM with uuid {vm} in this pool. Check the uuid (xe vm-list)."),
    C.ERR_AGENT_REFUSED: (
        ("vm", "verb", "reason"),
        "The guest agent of VM {vm} refused '{verb}': {reason}. The VM's owner enables "
        "verbs in /etc/xscontainer-agent/agent.conf ([requests] allow = ...)."),
    C.ERR_AGENT_INVALID: (
        ("vm", "reason"),
        "The guest agent of VM {vm} published an invalid report: {reason}. Its data is "
        "shown as stale; update or restart xscontainer-agent in the VM."),
    C.ERR_VM_NOT_REGISTERED: (
        ("vm",),
        "VM {vm} is not registered for container management. "
        "Register it first (plugin xscontainer, fn register)."),
    C.ERR_VM_NOT_RUNNING: (
        ("vm", "power_state"),
        "VM {vm} is {power_state}. Start the VM, then retry."),
    C.ERR_VM_UNREACHABLE: (
        ("vm", "reason"),
        "Cannot reach VM {vm}: {reason}. Over SSH: check that the VM reports an IP address "
        "(guest tools), that dom0 can route to it and that sshd runs. With the guest "
        "agent: check that xscontainer-agent runs in the VM."),
    C.ERR_HOSTKEY_MISMATCH: (
        ("vm", "expected_fingerprint", "got_fingerprint"),
        "The SSH host key of VM {vm} changed (pinned {expected_fingerprint}, offered "
        "{got_fingerprint}). If the VM was reinstalled or its keys regenerated, check the "
        "new fingerprint on the VM's console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key"
        ".pub) and run prepare again with fingerprint=<it>; otherwise someone may be "
        "impersonating the VM."),
    C.ERR_HOSTKEY_UNVERIFIED: (
        ("vm", "fingerprint_seen"),
        "The SSH host key of VM {vm} ({fingerprint_seen}) is not verified, so no "
        "credential was sent. Check it on the VM's console (ssh-keygen -lf "
        "/etc/ssh/ssh_host_ed25519_key.pub) or its cloud-init output, then run prepare "
        "with fingerprint=<it> (xscontainer prepare VM USER --fingerprint SHA256:...), or "
        "with trust=first-use if the network to the VM is trusted."),
    C.ERR_NO_SUCH_CONTAINER: (
        ("vm", "container"),
        "VM {vm} has no container '{container}'. It may have been removed: refresh the "
        "container list."),
    C.ERR_DOCKER_ERROR: (
        ("http_status", "message"),
        "Docker refused the request (HTTP {http_status}): {message}"),
    C.ERR_DOCKER_UNAVAILABLE: (
        ("vm", "reason"),
        "Docker is not available in VM {vm}: {reason}. Check that the Docker daemon runs "
        "and that the login user may use its socket (member of the 'docker' group)."),
    C.ERR_DOCKER_API_UNSUPPORTED: (
        ("vm", "engine_api", "our_api"),
        "The Docker Engine in VM {vm} speaks API versions {engine_api}; this xscontainer-ng "
        "speaks {our_api}: they have none in common. Update xscontainer-ng on the pool "
        "(or, for an engine older than Docker 1.12, Docker in the VM). The engine itself "
        "runs and its socket is reachable."),
    C.ERR_AUTH_FAILED: (
        ("vm", "reason"),
        "SSH login to VM {vm} failed: {reason}. Add the pool's public key "
        "(fn get_public_key) to the user's ~/.ssh/authorized_keys in the VM."),
    C.ERR_TIMEOUT: (
        ("vm", "what"),
        "Timed out in VM {vm} while waiting for {what}. The VM or its Docker daemon may "
        "be overloaded; retry later."),
    C.ERR_PROTOCOL_ERROR: (
        ("vm", "reason"),
        "The Docker API connection to VM {vm} returned something that is not valid "
        "HTTP: {reason}. Check that the login user's shell start-up files print nothing "
        "and that 'docker system dial-stdio' works in the VM."),
    C.ERR_RESPONSE_TOO_LARGE: (
        ("vm", "what", "limit_bytes"),
        "The answer of VM {vm} to {what} exceeded {limit_bytes} bytes and was refused."),
}


class XscError(Exception):
    """A failure reported to callers as the XAPI error ``[code] + params``."""

    def __init__(self, code, params=()):
        self.code = str(code)
        self.params = [str(p) for p in params]
        Exception.__init__(self, self.code, *self.params)

    def failure(self):
        """The XAPI ErrorDescription: ``[code, param, ...]`` (all strings)."""
        return [self.code] + list(self.params)

    def message(self):
        """A sentence for a person: what happened and what to do."""
        known = _MESSAGES.get(self.code)
        if known is None or len(known[0]) != len(self.params):
            return "{0} {1}".format(self.code, self.params)
        fields, template = known
        return template.format(**dict(zip(fields, self.params)))

    def __str__(self):
        return "{0}: {1}".format(self.code, self.message())

    def __repr__(self):
        return "{0}({1!r}, {2!r})".format(type(self).__name__, self.code, self.params)

    def __reduce__(self):
        # Subclasses take their params, not a code: rebuild through from_failure.
        return (from_failure, (self.failure(),))


class InvalidArgument(XscError):
    def __init__(self, name, reason):
        XscError.__init__(self, C.ERR_INVALID_ARGUMENT, [name, reason])


class VmNotRegistered(XscError):
    def __init__(self, vm):
        XscError.__init__(self, C.ERR_VM_NOT_REGISTERED, [vm])


class VmNotRunning(XscError):
    def __init__(self, vm, power_state):
        XscError.__init__(self, C.ERR_VM_NOT_RUNNING, [vm, power_state])


class VmUnreachable(XscError):
    def __init__(self, vm, reason):
        XscError.__init__(self, C.ERR_VM_UNREACHABLE, [vm, reason])


class HostKeyMismatch(XscError):
    def __init__(self, vm, expected_fingerprint, got_fingerprint):
        XscError.__init__(self, C.ERR_HOSTKEY_MISMATCH,
                          [vm, expected_fingerprint, got_fingerprint])


class HostKeyUnverified(XscError):
    """No credential was sent: the VM's host key could not be checked against anything
    the admin trusts (a pin, a fingerprint given, the guest agent's report)."""

    def __init__(self, vm, fingerprint_seen):
        XscError.__init__(self, C.ERR_HOSTKEY_UNVERIFIED, [vm, fingerprint_seen])


class ApiVersionUnsupported(XscError):
    def __init__(self, vm, engine_api, our_api):
        XscError.__init__(self, C.ERR_DOCKER_API_UNSUPPORTED, [vm, engine_api, our_api])


class NoSuchContainer(XscError):
    def __init__(self, vm, container):
        XscError.__init__(self, C.ERR_NO_SUCH_CONTAINER, [vm, container])


class DockerError(XscError):
    def __init__(self, http_status, message):
        XscError.__init__(self, C.ERR_DOCKER_ERROR, [http_status, message])

    @property
    def http_status(self):
        return int(self.params[0])


class DockerUnavailable(XscError):
    def __init__(self, vm, reason):
        XscError.__init__(self, C.ERR_DOCKER_UNAVAILABLE, [vm, reason])


class AuthFailed(XscError):
    def __init__(self, vm, reason):
        XscError.__init__(self, C.ERR_AUTH_FAILED, [vm, reason])


class Timeout(XscError):
    def __init__(self, vm, what):
        XscError.__init__(self, C.ERR_TIMEOUT, [vm, what])


class ProtocolError(XscError):
    def __init__(self, vm, reason):
        XscError.__init__(self, C.ERR_PROTOCOL_ERROR, [vm, reason])


class ResponseTooLarge(XscError):
    def __init__(self, vm, what, limit_bytes):
        XscError.__init__(self, C.ERR_RESPONSE_TOO_LARGE, [vm, what, limit_bytes])


_CLASSES = {
    C.ERR_INVALID_ARGUMENT: InvalidArgument,
    C.ERR_VM_NOT_REGISTERED: VmNotRegistered,
    C.ERR_VM_NOT_RUNNING: VmNotRunning,
    C.ERR_VM_UNREACHABLE: VmUnreachable,
    C.ERR_HOSTKEY_MISMATCH: HostKeyMismatch,
    C.ERR_HOSTKEY_UNVERIFIED: HostKeyUnverified,
    C.ERR_NO_SUCH_CONTAINER: NoSuchContainer,
    C.ERR_DOCKER_ERROR: DockerError,
    C.ERR_DOCKER_UNAVAILABLE: DockerUnavailable,
    C.ERR_DOCKER_API_UNSUPPORTED: ApiVersionUnsupported,
    C.ERR_AUTH_FAILED: AuthFailed,
    C.ERR_TIMEOUT: Timeout,
    C.ERR_PROTOCOL_ERROR: ProtocolError,
    C.ERR_RESPONSE_TOO_LARGE: ResponseTooLarge,
}


def from_failure(description):
    """Rebuild an XscError from a XAPI ErrorDescription ``[code, params...]``.

    Used when a call forwarded to another host fails: the same subclass comes back
    when the code and the number of params are known, a plain XscError otherwise.
    """
    code, params = str(description[0]), [str(p) for p in description[1:]]
    cls = _CLASSES.get(code)
    known = _MESSAGES.get(code)
    if cls is not None and known is not None and len(known[0]) == len(params):
        return cls(*params)
    return XscError(code, params)
