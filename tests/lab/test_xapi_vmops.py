"""VM lifecycle with xapi's checks and errors, and the VM hook that drives lab VMs."""
import os
import threading
import time

import pytest
import XenAPI

from lab.xapi import testing

pytestmark = pytest.mark.timeout(90)

A = "a0000000-0000-4000-8000-00000000000a"
B = "b0000000-0000-4000-8000-00000000000b"

HOOK = """#!/bin/sh
# Test VM hook: records its arguments, can be told to fail or to be slow, and reports
# guest networks for the new domain.
dir=$(dirname "$0")
echo "$*" >> "$dir/hook.log"
[ -e "$dir/hook.slow" ] && sleep 1
if [ -e "$dir/hook.fail" ]; then echo "lab VM refused to $1" >&2; exit 4; fi
case "$1" in
  start|reboot|migrate)
    printf '{"networks": {"0/ip": "10.0.0.%s", "0/ipv4/0": "10.0.0.%s"}, "other": {"platform-feature-multiprocessor-suspend": "1"}}\\n' "$4" "$4" ;;
esac
"""


@pytest.fixture(scope="module")
def sim():
    workdir = testing.make_workdir()
    hook = os.path.join(workdir, "hook")
    with open(hook, "w") as f:
        f.write(HOOK)
    os.chmod(hook, 0o755)
    vm = {"power_state": "Halted", "VCPUs_max": "4", "VCPUs_at_startup": "2",
          "memory_static_max": str(2 << 30), "memory_dynamic_max": str(1 << 30),
          "memory_dynamic_min": str(512 << 20)}
    cfg = testing.basic_config(workdir, vms=[
        dict(vm, uuid=A, name_label="vm-a", other_config={"xscontainer-monitor": "True"}),
        dict(vm, uuid=B, name_label="vm-b")], vm_hook=[hook])
    with testing.serving(workdir, cfg) as proc:
        proc.hook_dir = workdir
        yield proc



@pytest.fixture(scope="module")
def hosts(sim, root):
    order = [h["uuid"] for h in sim.config["hosts"]]
    return sorted(root.xenapi.host.get_all(), key=lambda h: order.index(
        root.xenapi.host.get_uuid(h)))


def vmref(root, uuid):
    return root.xenapi.VM.get_by_uuid(uuid)


def hook_calls(sim):
    path = os.path.join(sim.hook_dir, "hook.log")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = [line.split() for line in f.read().splitlines()]
    os.unlink(path)
    return lines


def details(f, *args):
    with pytest.raises(XenAPI.Failure) as e:
        f(*args)
    return e.value.details


@pytest.fixture
def halted(root):
    """Both VMs halted before and after each test."""
    def halt():
        for u in (A, B):
            r = vmref(root, u)
            if root.xenapi.VM.get_power_state(r) != "Halted":
                root.xenapi.VM.hard_shutdown(r)
    halt()
    yield
    halt()


def test_start_stop_cycle_with_hook(sim, root, hosts, halted):
    hook_calls(sim)
    vm = vmref(root, A)
    root.xenapi.VM.start(vm, False, False)
    rec = root.xenapi.VM.get_record(vm)
    domid = rec["domid"]
    assert rec["power_state"] == "Running" and int(domid) > 0
    assert rec["resident_on"] == hosts[0]      # the coordinator is the first enabled host
    assert vm in root.xenapi.host.get_resident_VMs(hosts[0])
    assert hook_calls(sim) == [["start", A, sim.config["hosts"][0]["uuid"], domid]]
    gm = rec["guest_metrics"]
    assert root.xenapi.VM_guest_metrics.get_networks(gm) == {
        "0/ip": "10.0.0." + domid, "0/ipv4/0": "10.0.0." + domid}
    assert root.xenapi.VM_guest_metrics.get_other(gm)[
        "platform-feature-multiprocessor-suspend"] == "1"
    assert details(root.xenapi.VM.start, vm, False, False) == [
        "VM_BAD_POWER_STATE", vm, "halted", "running"]
    root.xenapi.VM.clean_shutdown(vm)
    rec = root.xenapi.VM.get_record(vm)
    assert rec["power_state"] == "Halted" and rec["domid"] == "-1"
    assert rec["resident_on"] == "OpaqueRef:NULL" and rec["guest_metrics"] == "OpaqueRef:NULL"
    assert hook_calls(sim) == [["stop", A, sim.config["hosts"][0]["uuid"], domid]]
    assert details(root.xenapi.VM_guest_metrics.get_record, gm) == [
        "HANDLE_INVALID", "VM_guest_metrics", gm]
    assert details(root.xenapi.VM.clean_shutdown, vm) == [
        "VM_BAD_POWER_STATE", vm, "running", "halted"]
    assert details(root.xenapi.VM.hard_shutdown, vm) == [
        "VM_BAD_POWER_STATE", vm, "paused, suspended, running", "halted"]
    assert details(root.xenapi.VM.hard_reboot, vm) == [
        "VM_BAD_POWER_STATE", vm, "paused, running", "halted"]


def test_reboot_and_migrate_get_new_domids(sim, root, hosts, halted):
    vm = vmref(root, A)
    root.xenapi.VM.start(vm, False, False)
    d1 = root.xenapi.VM.get_domid(vm)
    hook_calls(sim)
    root.xenapi.VM.clean_reboot(vm)
    d2 = root.xenapi.VM.get_domid(vm)
    assert int(d2) > int(d1)
    h0, h1 = (h["uuid"] for h in sim.config["hosts"])
    assert hook_calls(sim) == [["reboot", A, h0, d2, d1]]
    root.xenapi.VM.hard_reboot(vm)
    d3 = root.xenapi.VM.get_domid(vm)
    assert int(d3) > int(d2)
    hook_calls(sim)
    root.xenapi.VM.pool_migrate(vm, hosts[1], {"live": "true"})
    rec = root.xenapi.VM.get_record(vm)
    assert rec["resident_on"] == hosts[1] and int(rec["domid"]) > int(d3)
    assert hook_calls(sim) == [["migrate", A, h1, rec["domid"], d3]]
    assert root.xenapi.VM_guest_metrics.get_networks(rec["guest_metrics"])["0/ip"] == \
        "10.0.0." + rec["domid"]
    assert vm in root.xenapi.host.get_resident_VMs(hosts[1])
    assert vm not in root.xenapi.host.get_resident_VMs(hosts[0])


def test_domids_are_never_reused(root, halted):
    vm = vmref(root, B)
    seen = []
    for _ in range(3):
        root.xenapi.VM.start(vm, False, False)
        seen.append(int(root.xenapi.VM.get_domid(vm)))
        root.xenapi.VM.hard_shutdown(vm)
    assert len(set(seen)) == 3 and seen == sorted(seen)


def test_hook_failure_leaves_the_vm_unchanged(sim, root, halted):
    vm = vmref(root, B)
    before = root.xenapi.VM.get_record(vm)
    flag = os.path.join(sim.hook_dir, "hook.fail")
    open(flag, "w").close()
    try:
        assert details(root.xenapi.VM.start, vm, False, False) == [
            "INTERNAL_ERROR", "lab VM refused to start"]
    finally:
        os.unlink(flag)
    assert root.xenapi.VM.get_record(vm) == before
    root.xenapi.VM.start(vm, False, False)
    open(flag, "w").close()
    try:
        assert details(root.xenapi.VM.clean_shutdown, vm) == [
            "INTERNAL_ERROR", "lab VM refused to stop"]
        assert root.xenapi.VM.get_power_state(vm) == "Running"
    finally:
        os.unlink(flag)


def test_affinity_start_on_and_disabled_hosts(root, hosts, halted):
    vm = vmref(root, B)
    root.xenapi.VM.set_affinity(vm, hosts[1])
    root.xenapi.VM.start(vm, False, False)
    assert root.xenapi.VM.get_resident_on(vm) == hosts[1]
    root.xenapi.VM.hard_shutdown(vm)
    root.xenapi.VM.set_affinity(vm, "OpaqueRef:NULL")
    root.xenapi.host.disable(hosts[1])
    try:
        assert details(root.xenapi.VM.start_on, vm, hosts[1], False, False) == [
            "HOST_DISABLED", hosts[1]]
        root.xenapi.VM.start_on(vm, hosts[0], False, False)
        assert details(root.xenapi.VM.pool_migrate, vm, hosts[1], {}) == [
            "HOST_DISABLED", hosts[1]]
        root.xenapi.VM.hard_shutdown(vm)
        root.xenapi.host.disable(hosts[0])
        assert details(root.xenapi.VM.start, vm, False, False) == ["NO_HOSTS_AVAILABLE"]
    finally:
        root.xenapi.host.enable(hosts[0])
        root.xenapi.host.enable(hosts[1])


def test_pause_unpause(root, halted):
    vm = vmref(root, B)
    root.xenapi.VM.start(vm, True, False)
    assert root.xenapi.VM.get_power_state(vm) == "Paused"
    assert details(root.xenapi.VM.clean_shutdown, vm) == [
        "VM_BAD_POWER_STATE", vm, "running", "paused"]
    root.xenapi.VM.unpause(vm)
    assert root.xenapi.VM.get_power_state(vm) == "Running"


def test_clone_and_snapshot_copy_other_config(root, halted):
    vm = vmref(root, A)
    clone = root.xenapi.VM.clone(vm, "vm-a-clone")
    c = root.xenapi.VM.get_record(clone)
    assert c["name_label"] == "vm-a-clone" and c["power_state"] == "Halted"
    assert c["other_config"] == {"xscontainer-monitor": "True"} and c["uuid"] != A
    assert c["is_a_snapshot"] is False and c["domid"] == "-1"
    root.xenapi.VM.start(vm, False, False)
    assert details(root.xenapi.VM.clone, vm, "x") == [
        "VM_BAD_POWER_STATE", vm, "halted", "running"]
    snap = root.xenapi.VM.snapshot(vm, "vm-a-snap")
    s = root.xenapi.VM.get_record(snap)
    assert s["is_a_snapshot"] is True and s["is_a_template"] is True
    assert s["snapshot_of"] == vm and s["power_state"] == "Halted"
    assert s["other_config"] == {"xscontainer-monitor": "True"}
    assert snap in root.xenapi.VM.get_snapshots(vm)
    assert details(root.xenapi.VM.start, snap, False, False) == [
        "VM_IS_SNAPSHOT", snap, "start"]
    root.xenapi.VM.set_is_a_template(clone, True)
    assert details(root.xenapi.VM.start, clone, False, False) == [
        "VM_IS_TEMPLATE", clone, "start"]
    assert details(root.xenapi.VM.destroy, vm) == [
        "VM_BAD_POWER_STATE", vm, "halted, suspended", "running"]
    root.xenapi.VM.destroy(snap)
    root.xenapi.VM.destroy(clone)
    assert snap not in root.xenapi.VM.get_snapshots(vm)
    assert details(root.xenapi.VM.get_record, clone) == ["HANDLE_INVALID", "VM", clone]


def test_live_vcpus_and_memory(root, halted):
    vm = vmref(root, B)
    assert details(root.xenapi.VM.set_VCPUs_number_live, vm, "3") == [
        "VM_BAD_POWER_STATE", vm, "running", "halted"]
    root.xenapi.VM.set_memory_dynamic_range(vm, str(600 << 20), str(1 << 30))
    root.xenapi.VM.start(vm, False, False)
    root.xenapi.VM.set_VCPUs_number_live(vm, "3")
    assert root.xenapi.VM.get_VCPUs_at_startup(vm) == "3"
    assert details(root.xenapi.VM.set_VCPUs_number_live, vm, "5") == [
        "INVALID_VALUE", "VCPU values must satisfy: 0 < VCPUs \u2264 VCPUs_max", "5"]
    root.xenapi.VM.set_memory_dynamic_range(vm, str(700 << 20), str(1500 << 20))
    rec = root.xenapi.VM.get_record(vm)
    assert rec["memory_dynamic_min"] == str(700 << 20)
    assert rec["memory_dynamic_max"] == str(1500 << 20)
    assert details(root.xenapi.VM.set_memory_dynamic_range, vm, str(1 << 20),
                   str(4 << 30))[0] == "MEMORY_CONSTRAINT_VIOLATION"
    assert details(root.xenapi.VM.set_VCPUs_max, vm, "8") == [
        "VM_BAD_POWER_STATE", vm, "halted", "running"]


def test_concurrent_operation_is_refused(sim, root, halted):
    vm = vmref(root, B)
    slow = os.path.join(sim.hook_dir, "hook.slow")
    open(slow, "w").close()
    other = testing.login(sim)
    t = threading.Thread(target=other.xenapi.VM.start, args=(vm, False, False))
    try:
        t.start()
        time.sleep(0.4)
        assert details(root.xenapi.VM.start, vm, False, False) == [
            "OTHER_OPERATION_IN_PROGRESS", "VM.start", vm]
    finally:
        t.join(10)
        os.unlink(slow)
    assert root.xenapi.VM.get_power_state(vm) == "Running"


def test_control_domain_is_protected(root, hosts):
    dom0 = root.xenapi.host.get_control_domain(hosts[0])
    assert details(root.xenapi.VM.start, dom0, False, False)[:4] == [
        "VM_BAD_POWER_STATE", dom0, "halted", "running"]
    assert details(root.xenapi.VM.clean_shutdown, dom0) == [
        "OPERATION_NOT_ALLOWED", "This operation is not allowed on a control domain"]
    assert details(root.xenapi.VM.snapshot, dom0, "s") == [
        "OPERATION_NOT_ALLOWED", "This operation is not allowed on a control domain"]


def test_hook_output_is_optional(sim, root, halted):
    # a hook that prints nothing (a VM without lab backing) still lets the VM start
    vm = vmref(root, B)
    hook = sim.config["vm_hook"][0]
    with open(hook) as f:
        original = f.read()
    with open(hook, "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    try:
        root.xenapi.VM.start(vm, False, False)
        assert root.xenapi.VM.get_guest_metrics(vm) == "OpaqueRef:NULL"
    finally:
        with open(hook, "w") as f:
            f.write(original)
