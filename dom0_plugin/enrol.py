"""`prepare`: enrol a running VM for SSH management.

Connect once with the user's password (or the pool key if already authorized), append the
pool's public key to the user's authorized_keys without damaging the file, check the user can
reach Docker, pin the VM's host key (with its type) and record the login user.
"""
import logging

from dom0_plugin import constants as C
from dom0_plugin import pool_key, ssh_transport, xapi_vm

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


def prepare(session, vm, username, password):
    key = pool_key.private_key(session)
    line = pool_key.public_line(key)
    pinned_before = ssh_transport.parse_pin(vm.other_config.get(C.KEY_HOSTKEY))
    conn = ssh_transport.SshConnection(vm.uuid, xapi_vm.addresses(session, vm), username,
                                       pkey=key, password=password)
    conn.open()  # no pin: `prepare` is where an admin (re-)pins explicitly
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
    return {"vm": vm.uuid, "username": username, "address": conn.address,
            "host_key": ssh_transport.format_pin(host_key),
            "fingerprint": ssh_transport.fingerprint(host_key), "docker_api": api,
            "repinned": bool(pinned_before and pinned_before != host_key)}
