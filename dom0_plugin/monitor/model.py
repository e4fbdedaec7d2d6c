"""What the monitor keeps of XAPI's objects, and who is responsible for each VM.

Only the fields the monitor needs are kept from each ``event.from`` snapshot: documents
are kept as digests (a docker_ps can be 200 KB; 500 VMs of them would not stay small).

Responsibility (each VM has exactly one owner, so two hosts never write the same keys):
- a registered VM that is Running or Paused is followed by the monitor of the host it is
  resident on;
- every other VM record (halted, suspended, deregistered, templates, snapshots) belongs
  to the pool coordinator's monitor, which removes documents left on it (a halted VM has
  no live container list; a clone or snapshot carries its parent's).
"""
import collections
import hashlib

from dom0_plugin import constants as C
from dom0_plugin import xapi_vm
from dom0_plugin.monitor import status as status_mod

NULL_REF = "OpaqueRef:NULL"
RUNNING_STATES = ("Running", "Paused")
OUR_KEYS = C.DOCUMENT_KEYS + (C.KEY_STATUS,)

VmView = collections.namedtuple(
    "VmView", "ref uuid name power_state resident_on domid special registered transport "
              "username hostkey guest_metrics status_text digests")
VmView.__doc__ = """The slice of a VM record the monitor works from. ``special``: control
domain, template or snapshot; ``digests``: {document key: digest} of the documents
present; ``status_text``: the raw xscontainer-status value (or None)."""


def digest(value):
    """A short fingerprint of a document, to tell whether XAPI holds what we would write."""
    if value is None:
        return None
    return hashlib.sha1(value.encode("utf-8", "surrogatepass")).digest()


def _flag(value):
    return value is True or (isinstance(value, str) and value.lower() == "true")


def view_of(ref, rec):
    """A VmView from a VM record (as event.from's snapshot gives it)."""
    other = rec.get("other_config") or {}
    try:
        domid = int(rec.get("domid", -1))
    except (TypeError, ValueError):
        domid = -1
    return VmView(
        ref=ref, uuid=str(rec.get("uuid", "")), name=str(rec.get("name_label", ""))[:200],
        power_state=rec.get("power_state", ""), resident_on=rec.get("resident_on", NULL_REF),
        domid=domid,
        special=(_flag(rec.get("is_control_domain")) or _flag(rec.get("is_a_template"))
                 or _flag(rec.get("is_a_snapshot"))),
        registered=str(other.get(C.KEY_MONITOR, "")).lower() == "true",
        transport=other.get(C.KEY_TRANSPORT) or C.MODE_SSH,
        username=other.get(C.KEY_USERNAME) or C.DEFAULT_USERNAME,
        hostkey=other.get(C.KEY_HOSTKEY) or None,
        guest_metrics=rec.get("guest_metrics", NULL_REF),
        status_text=other.get(C.KEY_STATUS),
        digests=dict((k, digest(other[k])) for k in C.DOCUMENT_KEYS if k in other))


def followed(view):
    """True when some host's monitor must follow this VM (registered and running)."""
    return (view.registered and not view.special and view.power_state in RUNNING_STATES
            and view.resident_on not in (NULL_REF, "", None))


def followed_by(view, host_ref):
    return followed(view) and view.resident_on == host_ref


def has_our_keys(view):
    return bool(view.digests) or view.status_text is not None


def status_of(view):
    return status_mod.decode(view.status_text)


def is_copy(view):
    """True when the documents and status on this VM were written for another VM."""
    st = status_of(view)
    return st is not None and bool(st.vm) and st.vm != view.uuid


# Where to reach a VM: the same rule as the plugin's direct path.
addresses = xapi_vm.addresses_from
