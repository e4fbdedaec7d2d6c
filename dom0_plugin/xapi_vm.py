"""The VM side of XAPI: finding a VM, checking it can be managed, reading where to reach it,
and writing single other_config keys (never the whole map: other writers share it)."""
import ipaddress
import logging
import re
from collections import namedtuple

from dom0_plugin import constants as C
from dom0_plugin import validate
from dom0_plugin.errors import InvalidArgument, VmNotRegistered, VmNotRunning, XscError

log = logging.getLogger(__name__)

NULL_REF = "OpaqueRef:NULL"

# What the plugin and the monitor need to know about one VM, read in one call.
Vm = namedtuple("Vm", "ref uuid name power_state resident_on other_config guest_metrics")


def failure_code(exc):
    """The XAPI error code of a XenAPI.Failure (or None)."""
    details = getattr(exc, "details", None)
    return details[0] if details else None


def lookup(session, vmuuid):
    """The VM with this uuid, validated; clear errors for malformed or unknown uuids."""
    vmuuid = validate.vm_uuid(vmuuid)
    try:
        ref = session.xenapi.VM.get_by_uuid(vmuuid)
        rec = session.xenapi.VM.get_record(ref)
    except Exception as e:
        if failure_code(e) in ("UUID_INVALID", "HANDLE_INVALID"):
            raise XscError(C.ERR_NO_SUCH_VM, [vmuuid])
        raise
    if rec.get("is_control_domain") or rec.get("is_a_template") or rec.get("is_a_snapshot"):
        raise InvalidArgument(C.ARG_VMUUID, "%s is a control domain, template or snapshot, "
                                            "not a VM that runs containers" % vmuuid)
    return Vm(ref, vmuuid, rec.get("name_label", ""), rec["power_state"], rec["resident_on"],
              rec.get("other_config", {}), rec.get("guest_metrics", NULL_REF))


def require_registered(vm):
    if vm.other_config.get(C.KEY_MONITOR, "").lower() != "true":
        raise VmNotRegistered(vm.uuid)


def require_running(vm):
    if vm.power_state != "Running" or vm.resident_on == NULL_REF:
        raise VmNotRunning(vm.uuid, vm.power_state)


def set_key(session, vm_ref, key, value, current=None):
    """Set one other_config key (only when it changes). Returns True when written."""
    if current is not None and current.get(key) == value:
        return False
    try:
        session.xenapi.VM.remove_from_other_config(vm_ref, key)
    except Exception as e:
        if failure_code(e) != "MAP_KEY_NOT_FOUND":  # harmless: the key was not there
            raise
    session.xenapi.VM.add_to_other_config(vm_ref, key, value)
    return True


def remove_key(session, vm_ref, key, current=None):
    if current is not None and key not in current:
        return False
    try:
        session.xenapi.VM.remove_from_other_config(vm_ref, key)
    except Exception as e:
        if failure_code(e) != "MAP_KEY_NOT_FOUND":
            raise
    return True


def addresses(session, vm):
    """Where to reach the VM, from its guest metrics (see addresses_from)."""
    if vm.guest_metrics in (NULL_REF, "", None):
        return []
    try:
        networks = session.xenapi.VM_guest_metrics.get_networks(vm.guest_metrics)
    except Exception as e:
        if failure_code(e) == "HANDLE_INVALID":
            return []
        raise
    return addresses_from(networks)


# VM_guest_metrics.networks keys of the guest's own network devices: <device>/ip,
# <device>/ipv4/<n>, <device>/ipv6/<n> (what the guest tools write; other keys are not
# addresses of a device)
_DEVICE_KEY = re.compile(r"\A([0-9]{1,4})/(?:ip|ipv4/([0-9]{1,4})|ipv6/([0-9]{1,4}))\Z")
MAX_ADDRESSES = 4       # tried in turn, a few seconds each: a call stays short


def addresses_from(networks):
    """The guest-reported addresses of VM_guest_metrics.networks (untrusted input): only
    keys of the guest's network devices, well-formed unicast addresses (never loopback,
    link-local, multicast or unspecified), without duplicates, IPv4 first, each family in
    device order, at most MAX_ADDRESSES."""
    found = []
    keys = [k for k in (networks or {}) if isinstance(k, str) and len(k) <= 32]
    for key in keys[:256]:
        match = _DEVICE_KEY.match(key)
        value = networks[key]
        if match is None or not isinstance(value, str) or len(value) > 64:
            continue
        try:
            ip = ipaddress.ip_address(value.strip())
        except ValueError:
            continue
        if ip.is_multicast or ip.is_unspecified or ip.is_loopback or ip.is_link_local:
            continue
        order = (ip.version, int(match.group(1)), int(match.group(2) or match.group(3) or 0))
        found.append((order, str(ip)))
    seen, out = set(), []
    for _, address in sorted(found):
        if address not in seen:
            seen.add(address)
            out.append(address)
    return out[:MAX_ADDRESSES]


def post_message(session, vm_uuid, name, body, priority=3):
    """A XAPI message on the VM (what XO and XenCenter show as alerts). Never fails the call."""
    try:
        return session.xenapi.message.create(name, str(priority), "VM", vm_uuid, body)
    except Exception:
        log.exception("could not post message %s on VM %s", name, vm_uuid)
        return None


def host_ref_of(session, host_uuid):
    return session.xenapi.host.get_by_uuid(host_uuid)


def take_secret(session, secret_uuid):
    """The value of the XAPI secret ``secret_uuid``, which is then destroyed (one use): a
    password that never travels in a call's arguments. The pool key's secret is refused."""
    secret_uuid = validate.vm_uuid(secret_uuid, C.ARG_PASSWORD_SECRET, "a secret's uuid")
    pool_ref = session.xenapi.pool.get_all()[0]
    if session.xenapi.pool.get_other_config(pool_ref).get(C.KEY_POOL_SSH_SECRET) == \
            secret_uuid:
        raise InvalidArgument(C.ARG_PASSWORD_SECRET, "that is the pool key's secret, not a "
                              "password")
    try:
        ref = session.xenapi.secret.get_by_uuid(secret_uuid)
        value = session.xenapi.secret.get_value(ref)
    except Exception as error:
        if failure_code(error) not in ("UUID_INVALID", "HANDLE_INVALID"):
            raise
        raise InvalidArgument(C.ARG_PASSWORD_SECRET, "no secret %s (each can be used once): "
                              "create one with xe secret-create value=<password> and pass "
                              "its uuid" % secret_uuid)
    try:
        session.xenapi.secret.destroy(ref)
    except Exception:
        log.exception("could not destroy the password secret %s", secret_uuid)
    return value
