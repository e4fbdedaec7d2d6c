"""The subset of xapi's data model the lab simulates: classes, fields, types, roles.

Types follow xapi's datamodel: ints travel as strings on the wire, refs are
``OpaqueRef:<uuid>``, datetimes are ``YYYYMMDDTHH:MM:SSZ``. Records are stored with plain
JSON values (ints as ints) and converted at the wire boundary by :mod:`lab.xapi.wire`.
"""
import collections

STRING = ("string",)
INT = ("int",)
FLOAT = ("float",)
BOOL = ("bool",)
DATETIME = ("datetime",)

NULL_REF = "OpaqueRef:NULL"
EPOCH = "19700101T00:00:00Z"


def Ref(cls):
    return ("ref", cls)


def Set(t):
    return ("set", t)


def Map(k, v):
    return ("map", k, v)


def Enum(name, values):
    return ("enum", name, tuple(values))


SMAP = Map(STRING, STRING)

# RBAC roles, most powerful first. A session may call a method if its role's rank is
# <= the method's role rank (xapi's roles are nested the same way).
ROLES = ("pool-admin", "pool-operator", "vm-power-admin", "vm-admin", "vm-operator",
         "read-only")
POOL_ADMIN, POOL_OP, VM_POWER_ADMIN, VM_ADMIN, VM_OP, READ_ONLY = range(len(ROLES))


def role_rank(name):
    """Rank of a role name; unknown names get no rights beyond read-only."""
    try:
        return ROLES.index(name)
    except ValueError:
        return READ_ONLY


def roles_with(rank):
    """Name labels of the roles that hold a permission needing ``rank``, as xapi lists them."""
    return ", ".join(ROLES[:rank + 1])


# One field: ``rw`` means xapi generates set_/add_to_/remove_from_ (or add_/remove_ for
# sets); ``write_role`` is the role rank those need.
Field = collections.namedtuple("Field", "name type default rw write_role")


def F(name, type_, default, rw=False, write_role=None):
    return Field(name, type_, default, rw, write_role)


ClassSpec = collections.namedtuple(
    "ClassSpec", "name fields in_db name_label_lookup write_role read_role keyed_maps")

POWER_STATES = ("Halted", "Paused", "Running", "Suspended")
MESSAGE_CLASSES = ("VM", "Host", "SR", "Pool", "VMPP", "VMSS", "PVS_proxy", "VDI",
                   "Certificate")


def _spec(name, fields, in_db=True, name_label_lookup=False, write_role=POOL_OP,
          read_role=READ_ONLY, keyed_maps=None):
    od = collections.OrderedDict((f.name, f) for f in fields)
    return ClassSpec(name, od, in_db, name_label_lookup, write_role, read_role,
                     keyed_maps or {})


POOL = _spec("pool", [
    F("uuid", STRING, ""),
    F("name_label", STRING, "", True),
    F("name_description", STRING, "", True),
    F("master", Ref("host"), NULL_REF),
    F("default_SR", Ref("SR"), NULL_REF, True),
    F("suspend_image_SR", Ref("SR"), NULL_REF, True),
    F("crash_dump_SR", Ref("SR"), NULL_REF, True),
    F("other_config", SMAP, {}, True),
    F("gui_config", SMAP, {}, True),
    F("tags", Set(STRING), [], True, VM_OP),
    F("ha_enabled", BOOL, False),
    F("restrictions", SMAP, {}),
    F("cpu_info", SMAP, {}),
    F("allowed_operations", Set(STRING), []),
    F("current_operations", SMAP, {}),
])

HOST = _spec("host", [
    F("uuid", STRING, ""),
    F("name_label", STRING, "", True),
    F("name_description", STRING, "", True),
    F("address", STRING, ""),
    F("hostname", STRING, ""),
    F("enabled", BOOL, True),
    F("software_version", SMAP, {}),
    F("API_version_major", INT, 2),
    F("API_version_minor", INT, 21),
    F("API_version_vendor", STRING, "XenSource"),
    F("API_version_vendor_implementation", SMAP, {}),
    F("resident_VMs", Set(Ref("VM")), []),          # computed from VM.resident_on
    F("control_domain", Ref("VM"), NULL_REF),
    F("other_config", SMAP, {}, True),
    F("logging", SMAP, {}, True),
    F("tags", Set(STRING), [], True, VM_OP),
    F("capabilities", Set(STRING), []),
    F("cpu_info", SMAP, {}),
    F("license_params", SMAP, {}),
    F("edition", STRING, "xcp-ng"),
    F("memory_overhead", INT, 0),
    F("metrics", Ref("host_metrics"), NULL_REF),
    F("PIFs", Set(Ref("PIF")), []),
    F("allowed_operations", Set(STRING), []),
    F("current_operations", SMAP, {}),
], name_label_lookup=True)

VM = _spec("VM", [
    F("uuid", STRING, ""),
    F("name_label", STRING, "", True),
    F("name_description", STRING, "", True),
    F("user_version", INT, 1, True),
    F("is_a_template", BOOL, False, True),
    F("is_default_template", BOOL, False),
    F("is_a_snapshot", BOOL, False),
    F("snapshot_of", Ref("VM"), NULL_REF),
    F("snapshots", Set(Ref("VM")), []),              # computed from VM.snapshot_of
    F("snapshot_time", DATETIME, EPOCH),
    F("transportable_snapshot_id", STRING, ""),
    F("parent", Ref("VM"), NULL_REF),
    F("children", Set(Ref("VM")), []),
    F("power_state", Enum("vm_power_state", POWER_STATES), "Halted"),
    F("resident_on", Ref("host"), NULL_REF),
    F("scheduled_to_be_resident_on", Ref("host"), NULL_REF),
    F("affinity", Ref("host"), NULL_REF, True, VM_POWER_ADMIN),
    F("domid", INT, -1),
    F("domarch", STRING, ""),
    F("is_control_domain", BOOL, False),
    F("memory_overhead", INT, 0),
    F("memory_target", INT, 0),
    F("memory_static_max", INT, 1 << 30),
    F("memory_dynamic_max", INT, 1 << 30),
    F("memory_dynamic_min", INT, 1 << 30),
    F("memory_static_min", INT, 1 << 30),
    F("VCPUs_params", SMAP, {}, True),
    F("VCPUs_max", INT, 1),
    F("VCPUs_at_startup", INT, 1),
    F("actions_after_shutdown", STRING, "destroy"),
    F("actions_after_reboot", STRING, "restart"),
    F("actions_after_crash", STRING, "restart"),
    F("PV_args", STRING, "", True),
    F("HVM_boot_policy", STRING, "BIOS order", True),
    F("platform", SMAP, {}, True),
    F("other_config", SMAP, {}, True, VM_OP),
    F("xenstore_data", SMAP, {}, True),
    F("blocked_operations", SMAP, {}, True),
    F("tags", Set(STRING), [], True, VM_OP),
    F("guest_metrics", Ref("VM_guest_metrics"), NULL_REF),
    F("metrics", Ref("VM_metrics"), NULL_REF),
    F("allowed_operations", Set(STRING), []),
    F("current_operations", SMAP, {}),
    F("ha_restart_priority", STRING, ""),
    F("start_delay", INT, 0),
    F("shutdown_delay", INT, 0),
    F("order", INT, 0),
    F("VBDs", Set(Ref("VBD")), []),
    F("VIFs", Set(Ref("VIF")), []),
    F("requires_reboot", BOOL, False),
    F("domain_type", STRING, "hvm"),
], name_label_lookup=True, write_role=VM_ADMIN,
    # xapi guards these other_config keys with their own permission names
    keyed_maps={"other_config": ("folder", "XenCenter.CustomFields.*")})

VM_GUEST_METRICS = _spec("VM_guest_metrics", [
    F("uuid", STRING, ""),
    F("os_version", SMAP, {}),
    F("PV_drivers_version", SMAP, {}),
    F("PV_drivers_up_to_date", BOOL, False),
    F("PV_drivers_detected", BOOL, False),
    F("memory", SMAP, {}),
    F("disks", SMAP, {}),
    F("networks", SMAP, {}),
    F("other", SMAP, {}),
    F("services", SMAP, {}),
    F("last_updated", DATETIME, EPOCH),
    F("other_config", SMAP, {}, True),
    F("live", BOOL, True),
    F("can_use_hotplug_vbd", STRING, "unspecified"),
    F("can_use_hotplug_vif", STRING, "unspecified"),
], write_role=VM_ADMIN)

MESSAGE = _spec("message", [
    F("uuid", STRING, ""),
    F("name", STRING, ""),
    F("priority", INT, 0),
    F("cls", Enum("cls", MESSAGE_CLASSES), "VM"),
    F("obj_uuid", STRING, ""),
    F("timestamp", DATETIME, EPOCH),
    F("body", STRING, ""),
], in_db=False)

SECRET = _spec("secret", [
    F("uuid", STRING, ""),
    F("value", STRING, "", True),
    F("other_config", SMAP, {}, True),
], read_role=POOL_OP)

SESSION = _spec("session", [
    F("uuid", STRING, ""),
    F("this_host", Ref("host"), NULL_REF),
    F("this_user", Ref("user"), NULL_REF),
    F("last_active", DATETIME, EPOCH),
    F("pool", BOOL, False),
    F("other_config", SMAP, {}, True),
    F("is_local_superuser", BOOL, False),
    F("subject", Ref("subject"), NULL_REF),
    F("validation_time", DATETIME, EPOCH),
    F("auth_user_sid", STRING, ""),
    F("auth_user_name", STRING, ""),
    F("rbac_permissions", Set(STRING), []),
    F("tasks", Set(Ref("task")), []),
    F("parent", Ref("session"), NULL_REF),
    F("originator", STRING, ""),
], in_db=False, write_role=READ_ONLY)

CLASSES = collections.OrderedDict(
    (c.name, c) for c in (POOL, HOST, VM, VM_GUEST_METRICS, MESSAGE, SECRET, SESSION))

# Tables kept in the database (persisted, visible to event.from, counted in
# valid_ref_counts). Messages have their own store and generation, as in xapi.
DB_TABLES = tuple(c.name for c in CLASSES.values() if c.in_db)


def class_by_lower(name):
    """The class whose lower-cased name is ``name`` (event classes are lower case)."""
    for c in CLASSES.values():
        if c.name.lower() == name:
            return c
    return None


def default_record(cls):
    """A fresh record of ``cls`` with every field at its default (copies, not shares)."""
    rec = {}
    for f in CLASSES[cls].fields.values():
        d = f.default
        rec[f.name] = dict(d) if isinstance(d, dict) else list(d) if isinstance(d, list) else d
    return rec
