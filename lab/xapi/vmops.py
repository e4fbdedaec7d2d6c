"""VM lifecycle operations with xapi's checks (Xapi_vm_lifecycle) and the lab's VM hook.

The hook (config ``vm_hook``) makes the lab's VM follow the simulated one: it runs
``vm_hook + [op, vm_uuid, host_uuid, domid]`` (plus the old domid for reboot and migrate)
synchronously, after the checks and before the change is committed. Exit 0 commits; its
stdout may be a JSON object whose maps (``networks``, ``other``, ...) become the VM's
guest metrics. A non-zero exit fails the call with ``INTERNAL_ERROR [stderr tail]`` and
leaves the VM as it was.
"""
import json
import subprocess
import uuid as uuidlib

from . import schema
from .schema import NULL_REF
from .wire import ApiError, now_datetime

# Allowed power states per operation (Xapi_vm_lifecycle.allowed_power_states).
_ALLOWED = {
    "start": ("Halted",), "start_on": ("Halted",),
    "clean_shutdown": ("Running",), "clean_reboot": ("Running",),
    "pool_migrate": ("Running",), "changing_VCPUs_live": ("Running",),
    "pause": ("Running",), "unpause": ("Paused",),
    "hard_shutdown": ("Paused", "Suspended", "Running"),
    "hard_reboot": ("Paused", "Running"),
    "clone": ("Halted",), "destroy": ("Halted", "Suspended"),
    "changing_dynamic_range": ("Halted", "Running"),
    "changing_VCPUs": ("Halted",),
    "snapshot": ("Halted", "Paused", "Suspended", "Running"),
}
# Operations a (non-default) template allows; everything else is VM_IS_TEMPLATE.
_TEMPLATE_OK = ("changing_dynamic_range", "changing_VCPUs", "clone", "destroy")
# Operations a snapshot allows; everything else is VM_IS_SNAPSHOT.
_SNAPSHOT_OK = ("clone", "destroy", "hard_shutdown")
# What a control domain allows (the rest: OPERATION_NOT_ALLOWED); dom0 itself refuses
# changing_VCPUs and destroy too.
_CONTROL_DOMAIN_OK = ("changing_dynamic_range", "start", "start_on", "changing_VCPUs",
                      "destroy")

GUEST_METRICS_MAPS = ("networks", "other", "os_version", "PV_drivers_version", "services",
                      "memory", "disks")
HOOK_TIMEOUT = 900


def allowed_power_states(op, rec):
    states = _ALLOWED[op]
    if op == "changing_VCPUs" and rec["is_control_domain"]:
        states = states + ("Running",)
    if op == "clone" and rec["is_a_snapshot"]:
        states = states + ("Suspended",)
    return states


def allowed_operations(rec):
    """The VM's allowed_operations field for its current state (advisory, as in xapi)."""
    ops = []
    for op in ("start", "start_on", "clean_shutdown", "clean_reboot", "hard_shutdown",
               "hard_reboot", "pause", "unpause", "pool_migrate", "clone", "snapshot",
               "destroy", "changing_VCPUs_live", "changing_dynamic_range"):
        if _error(rec, op, "") is None:
            ops.append(op)
    return ops


def _error(rec, op, ref):
    """The first error xapi's check_operation_error finds, or None."""
    blocked = rec["blocked_operations"]
    if op in blocked:
        return ("OPERATION_BLOCKED", [ref, blocked[op]])
    states = allowed_power_states(op, rec)
    if rec["power_state"] not in states:
        return ("VM_BAD_POWER_STATE", [ref, ", ".join(s.lower() for s in states),
                                       rec["power_state"].lower()])
    if rec["is_a_template"] and not rec["is_a_snapshot"]:
        if op not in _TEMPLATE_OK or (op == "destroy" and rec["is_default_template"]):
            return ("VM_IS_TEMPLATE", [ref, op])
    if rec["is_a_snapshot"] and op not in _SNAPSHOT_OK:
        return ("VM_IS_SNAPSHOT", [ref, op])
    if op in ("changing_VCPUs", "destroy") and rec["is_control_domain"] and rec["domid"] == 0:
        return ("OPERATION_NOT_ALLOWED", ["This operation is not allowed on dom0"])
    if rec["is_control_domain"] and op not in _CONTROL_DOMAIN_OK:
        return ("OPERATION_NOT_ALLOWED", ["This operation is not allowed on a control domain"])
    return None


class VmOps(object):
    """The VM operations of one simulator; ``sim`` gives db, hosts, hook."""

    def __init__(self, sim):
        self.sim = sim
        self.db = sim.db
        self.busy = {}   # vm ref -> operation in progress

    # ------------------------------------------------------------ framework

    def _begin(self, vm, op):
        """Check ``op`` on ``vm`` and mark it in progress; returns a copy of the record."""
        rec = self.db.get("VM", vm)
        err = _error(rec, op, vm)
        if err:
            raise ApiError(*err)
        if vm in self.busy:
            raise ApiError("OTHER_OPERATION_IN_PROGRESS", ["VM." + self.busy[vm], vm])
        self.busy[vm] = op
        return dict(rec)

    def _end(self, vm):
        with self.db.lock:
            self.busy.pop(vm, None)

    def _hook(self, op, vm_uuid, host_uuid, domid, old_domid=None):
        """Run the lab's VM hook (if configured) outside the database lock."""
        hook = self.sim.vm_hook
        if not hook:
            return None
        argv = list(hook) + [op, vm_uuid, host_uuid, str(domid)]
        if old_domid is not None:
            argv.append(str(old_domid))
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=HOOK_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ApiError("INTERNAL_ERROR", ["vm_hook %s failed: %s" % (op, e)])
        if p.returncode != 0:
            tail = p.stderr.decode("utf-8", "replace").strip()[-2000:]
            raise ApiError("INTERNAL_ERROR", [tail or "vm_hook %s exited with %d"
                                              % (op, p.returncode)])
        text = p.stdout.decode("utf-8", "replace").strip()
        if not text:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            data = ()
        if data is None:
            return None
        if not isinstance(data, dict):
            raise ApiError("INTERNAL_ERROR", ["vm_hook %s printed no JSON object: %s"
                                              % (op, text[:500])])
        return data

    def _apply_guest_metrics(self, vm, data):
        if not data:
            return
        maps = {k: {str(a): str(b) for a, b in data[k].items()}
                for k in GUEST_METRICS_MAPS if isinstance(data.get(k), dict)}
        if not maps:
            return
        maps["last_updated"] = now_datetime()
        gm = self.db.get("VM", vm)["guest_metrics"]
        if gm != NULL_REF and self.db.exists("VM_guest_metrics", gm):
            self.db.update("VM_guest_metrics", gm, maps)
        else:
            rec = schema.default_record("VM_guest_metrics")
            rec.update(maps)
            rec["uuid"] = str(uuidlib.uuid4())
            gm = self.db.create("VM_guest_metrics", rec)
            self.db.update("VM", vm, {"guest_metrics": gm})

    def _commit(self, vm, changes, metrics=None, drop_metrics=False):
        """Apply the changes of a successful operation (under the database lock)."""
        rec = self.db.get("VM", vm)
        new = dict(rec)
        new.update(changes)
        changes["allowed_operations"] = allowed_operations(new)
        if drop_metrics and rec["guest_metrics"] != NULL_REF:
            gm = rec["guest_metrics"]
            changes["guest_metrics"] = NULL_REF
            self.db.update("VM", vm, changes)
            if self.db.exists("VM_guest_metrics", gm):
                self.db.destroy("VM_guest_metrics", gm)
        else:
            self.db.update("VM", vm, changes)
        self._apply_guest_metrics(vm, metrics)

    def _run(self, vm, op, plan):
        """Check, plan (under lock), hook (no lock), commit (under lock)."""
        with self.db.lock:
            rec = self._begin(vm, op)
            try:
                hook_args, changes, kw = plan(rec)
                if hook_args:
                    # (op, rec, host ref, domid[, old domid]) -> the hook's own argv
                    host = hook_args[2]
                    host_uuid = self.db.get("host", host)["uuid"] if host != NULL_REF else ""
                    hook_args = (hook_args[0], rec["uuid"], host_uuid) + tuple(hook_args[3:])
            except Exception:
                self.busy.pop(vm, None)
                raise
        try:
            data = self._hook(*hook_args) if hook_args else None
            with self.db.lock:
                if not self.db.exists("VM", vm):
                    raise ApiError("HANDLE_INVALID", ["VM", vm])
                metrics = data if hook_args and hook_args[0] != "stop" else None
                self._commit(vm, changes, metrics, **kw)
        finally:
            self._end(vm)

    # ------------------------------------------------------------ host choice

    def _enabled(self, host):
        return self.db.get("host", host)["enabled"]

    def _choose_host(self, rec):
        aff = rec["affinity"]
        if aff != NULL_REF and self.db.exists("host", aff) and self._enabled(aff):
            return aff
        master = self.sim.pool_master()
        hosts = [master] + [h for h in self.db.refs("host") if h != master]
        for h in hosts:
            if self.db.exists("host", h) and self._enabled(h):
                return h
        raise ApiError("NO_HOSTS_AVAILABLE", [])

    def _check_host(self, host):
        self.db.get("host", host)
        if not self._enabled(host):
            raise ApiError("HOST_DISABLED", [host])

    # ------------------------------------------------------------ power operations

    def start(self, vm, start_paused, force, host=None):
        op = "start" if host is None else "start_on"

        def plan(rec):
            if host is None:
                target = self._choose_host(rec)
            else:
                self._check_host(host)
                target = host
            domid = self.db.alloc_domid()
            changes = {"power_state": "Paused" if start_paused else "Running",
                       "resident_on": target, "domid": domid,
                       "memory_target": rec["memory_dynamic_max"]}
            return ("start", rec, target, domid), changes, {}
        self._run(vm, op, plan)

    def shutdown(self, vm, op):
        def plan(rec):
            changes = {"power_state": "Halted", "resident_on": NULL_REF, "domid": -1,
                       "memory_target": 0}
            return ("stop", rec, rec["resident_on"], rec["domid"]), changes, \
                {"drop_metrics": True}
        self._run(vm, op, plan)

    def reboot(self, vm, op):
        def plan(rec):
            domid = self.db.alloc_domid()
            return ("reboot", rec, rec["resident_on"], domid, rec["domid"]), \
                {"domid": domid, "power_state": "Running"}, {}
        self._run(vm, op, plan)

    def pool_migrate(self, vm, host, options):
        def plan(rec):
            self._check_host(host)
            domid = self.db.alloc_domid()
            return ("migrate", rec, host, domid, rec["domid"]), \
                {"resident_on": host, "domid": domid}, {}
        self._run(vm, "pool_migrate", plan)

    def pause(self, vm, op):
        def plan(rec):
            return None, {"power_state": "Paused" if op == "pause" else "Running"}, {}
        self._run(vm, op, plan)

    # ------------------------------------------------------------ copies and removal

    def _copy(self, vm, op, new_name, snapshot):
        with self.db.lock:
            rec = self._begin(vm, op)
            try:
                new = dict(rec)
                for k in ("other_config", "xenstore_data", "platform", "blocked_operations",
                          "VCPUs_params"):
                    new[k] = dict(rec[k])
                new["tags"] = list(rec["tags"])
                new.update({"uuid": str(uuidlib.uuid4()), "name_label": new_name,
                            "power_state": "Halted", "resident_on": NULL_REF, "domid": -1,
                            "guest_metrics": NULL_REF, "metrics": NULL_REF,
                            "is_control_domain": False, "current_operations": {},
                            "memory_target": 0, "affinity": rec["affinity"],
                            "scheduled_to_be_resident_on": NULL_REF})
                if snapshot:
                    new.update({"is_a_snapshot": True, "is_a_template": True,
                                "snapshot_of": vm, "snapshot_time": now_datetime()})
                else:
                    new.update({"is_a_snapshot": False, "snapshot_of": NULL_REF,
                                "snapshot_time": schema.EPOCH})
                new["allowed_operations"] = allowed_operations(new)
                return self.db.create("VM", new)
            finally:
                self.busy.pop(vm, None)

    def clone(self, vm, new_name):
        return self._copy(vm, "clone", new_name, snapshot=False)

    def snapshot(self, vm, new_name):
        return self._copy(vm, "snapshot", new_name, snapshot=True)

    def destroy(self, vm):
        with self.db.lock:
            rec = self._begin(vm, "destroy")
            try:
                gm = rec["guest_metrics"]
                self.db.destroy("VM", vm)
                if gm != NULL_REF and self.db.exists("VM_guest_metrics", gm):
                    self.db.destroy("VM_guest_metrics", gm)
            finally:
                self.busy.pop(vm, None)

    # ------------------------------------------------------------ live resizing

    def set_vcpus_number_live(self, vm, n):
        with self.db.lock:
            rec = self._begin(vm, "changing_VCPUs_live")
            try:
                if n < 1 or n > rec["VCPUs_max"]:
                    raise ApiError("INVALID_VALUE",
                                   ["VCPU values must satisfy: 0 < VCPUs \u2264 VCPUs_max",
                                    str(n)])
                self.db.update("VM", vm, {"VCPUs_at_startup": n})
            finally:
                self.busy.pop(vm, None)

    def set_memory_dynamic_range(self, vm, lo, hi):
        with self.db.lock:
            rec = self._begin(vm, "changing_dynamic_range")
            try:
                if not rec["memory_static_min"] <= lo <= hi <= rec["memory_static_max"]:
                    raise ApiError("MEMORY_CONSTRAINT_VIOLATION", [
                        "Memory limits must satisfy: static_min \u2264 dynamic_min \u2264 "
                        "dynamic_max \u2264 static_max"])
                changes = {"memory_dynamic_min": lo, "memory_dynamic_max": hi}
                if rec["power_state"] != "Halted":
                    changes["memory_target"] = hi
                self.db.update("VM", vm, changes)
            finally:
                self.busy.pop(vm, None)

    def set_vcpus(self, vm, field, value):
        """set_VCPUs_max / set_VCPUs_at_startup (halted VMs only)."""
        with self.db.lock:
            rec = self._begin(vm, "changing_VCPUs")
            try:
                if field == "VCPUs_max":
                    bad = value < 1 or value < rec["VCPUs_at_startup"]
                else:
                    bad = value < 1 or value > rec["VCPUs_max"]
                if bad:
                    raise ApiError("INVALID_VALUE", [
                        "VCPU values must satisfy: 0 < VCPUs_at_startup \u2264 VCPUs_max",
                        str(value)])
                self.db.update("VM", vm, {field: value})
            finally:
                self.busy.pop(vm, None)
