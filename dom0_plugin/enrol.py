"""`prepare`: enrol a running VM for SSH management.

Verify the VM's host key first, before any credential leaves dom0: against the
fingerprint the admin gives (from the VM's console or cloud-init output), or the key
already pinned, or, only when asked for (``trust=first-use``), whatever answers (a XAPI
message then says what was pinned). Then log in once with the user's password (or the
pool key if already authorized), append the pool's public key to the user's
authorized_keys without damaging the file, check the user can reach Docker, pin the host
key (with its type) and record the login user.
"""
import logging

import re

from dom0_plugin import constants as C
from dom0_plugin import pool_key, ssh_transport, validate, xapi_vm
from dom0_plugin.errors import HostKeyMismatch, HostKeyUnverified

log = logging.getLogger(__name__)

# Appends one line, only if absent; adds the missing final newline of a file first; keeps
# modes strict. The key line is ours (base64 and a fixed comment): no caller text in here.
AUTHORIZE = r"""set -e
umask 077
d="$HOME/.ssh"; f="$d/authorized_keys"; line='%s'
mkdir -p "$d"; chmod 700 "$d"; touch "$f"
if ! grep -qxF "$line" "$f"; then
  if [ -s "$f" ] && [ "$(tail -c 1 "$f" | od -An -c | tr -d ' ')" != '\n' ]; then echo >> "$f"; fi
  printf '%%s\n' "$line" >> "$f"
fi
chmod 600 "$f"
"""
DOCKER_CHECK = "docker version --format '{{.Server.APIVersion}}'"
_FINGERPRINT = re.compile(r"\A[A-Za-z0-9+/]{43}\Z")


def _short_type(key_type):
    return {"ssh-ed25519": "ed25519", "ssh-rsa": "rsa"}.get(
        key_type, "ecdsa" if key_type.startswith("ecdsa") else key_type)


def normalise_fingerprint(text):
    """``SHA256:<base64>`` as OpenSSH prints it (the prefix may be left out), or
    InvalidArgument."""
    text = (text or "").strip()
    body = text[7:] if text.upper().startswith("SHA256:") else text
    if not _FINGERPRINT.match(body):
        raise validate.InvalidArgument(C.ARG_FINGERPRINT, "expected SHA256:<43 base64 "
                                       "characters>, as ssh-keygen -lf prints it")
    return "SHA256:" + body


def host_key_policy(vm_uuid, pinned, fingerprint, trust):
    """accept(host_key) for SshConnection: which key may be sent a credential."""
    def accept(host_key):
        seen = ssh_transport.fingerprint(host_key)
        if fingerprint is not None:
            if seen != fingerprint:
                raise HostKeyMismatch(vm_uuid, fingerprint, seen)
            return True
        if pinned is not None:
            if host_key != pinned:
                raise HostKeyMismatch(vm_uuid, ssh_transport.fingerprint(pinned), seen)
            return True
        if trust == C.TRUST_FIRST_USE:
            return True
        raise HostKeyUnverified(vm_uuid, seen)
    return accept


def prepare(session, vm, username, password, fingerprint=None, trust=None):
    key = pool_key.private_key(session)
    line = pool_key.public_line(key)
    pinned_before = ssh_transport.parse_pin(vm.other_config.get(C.KEY_HOSTKEY))
    # the pin is checked by the policy (a fingerprint given may replace it), never skipped
    conn = ssh_transport.SshConnection(
        vm.uuid, xapi_vm.addresses(session, vm), username, pkey=key, password=password,
        accept=host_key_policy(vm.uuid, pinned_before, fingerprint, trust))
    conn.open()
    try:
        status, out, err = conn.run(AUTHORIZE % line)
        if status != 0:
            raise ssh_transport.DockerUnavailable(
                vm.uuid, "could not update ~/.ssh/authorized_keys of %s: %s"
                % (username, err.decode("utf-8", "replace").strip()[:200]))
        status, out, err = conn.run(DOCKER_CHECK)
        if status != 0:
            raise ssh_transport.explain_docker_failure(vm.uuid, username, err, status)
        api = out.decode("ascii", "replace").strip()
        host_key = conn.host_key
    finally:
        conn.close()
    xapi_vm.set_key(session, vm.ref, C.KEY_HOSTKEY, ssh_transport.format_pin(host_key),
                    vm.other_config)
    xapi_vm.set_key(session, vm.ref, C.KEY_USERNAME, username, vm.other_config)
    xapi_vm.remove_key(session, vm.ref, C.KEY_HOSTKEY_REFUSED, vm.other_config)
    if pinned_before and pinned_before != host_key:
        log.warning("VM %s: host key re-pinned by prepare: %s -> %s", vm.uuid,
                    ssh_transport.fingerprint(pinned_before),
                    ssh_transport.fingerprint(host_key))
    if fingerprint is None and pinned_before is None:
        # trust on first use, asked for: say loudly what was pinned
        xapi_vm.post_message(session, vm.uuid, C.MESSAGE_HOSTKEY_PINNED,
                             "The SSH host key %s %s of VM %s (%s) was pinned on first use "
                             "(prepare trust=first-use), as answered at %s. Check it on the "
                             "VM's console: ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub"
                             % (host_key.type, ssh_transport.fingerprint(host_key), vm.name,
                                vm.uuid, conn.address, _short_type(host_key.type)))
    return {"vm": vm.uuid, "username": username, "address": conn.address,
            "host_key": ssh_transport.format_pin(host_key),
            "fingerprint": ssh_transport.fingerprint(host_key), "docker_api": api,
            "repinned": bool(pinned_before and pinned_before != host_key)}
