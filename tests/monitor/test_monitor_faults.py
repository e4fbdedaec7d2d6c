"""xscontainer-monitor on a lab pool of its own: the faults of issue 4, each recovering
within 30 s, with no stale data shown as fresh.

The lab's monitors run with short timers (monitor.conf below) so that failures are
noticed and reported quickly; everything else is the product as installed.
"""
import json
import os
import signal
import subprocess
import sys
import time
import xml.dom.minidom

import pytest

from dom0_plugin import constants as C
from dom0_plugin.docker_api import DockerClient, unix_connector
from dom0_plugin.monitor import status as st
from tests.bursts import Bursts
from tests.labfixture import lab_cmd, start_lab, stop_lab
from tests.monitor import helpers
from tests.monitor.helpers import Pool, docker, monitor_log, ps_entries, wait_for, \
    write_monitor_config

RECOVERY = 30.0
SETTINGS = {"grace_seconds": 6, "tcp_keepalive": 3, "backoff_max": 4,
            "connect_timeout": 3, "log_level": "DEBUG"}
RUNNER = "xsclab/busybox:1"


@pytest.fixture(scope="module")
def pool():
    lab = start_lab("--hosts", "2", "--vms", "2")
    try:
        for host in ("host0", "host1"):
            write_monitor_config(lab, host, SETTINGS)
        lab_cmd("restart", "monitor", "--state", lab.state)
        p = Pool(lab)
        for name in ("vm0", "vm1"):
            p.enrol(name)
        for name in ("vm0", "vm1"):
            wait_fresh(p, name)
        yield p
    finally:
        stop_lab(lab)


# ---------------------------------------------------------------- helpers

def spec(pool, name):
    from lab.state import Paths, Runtime
    rt = Runtime(Paths(pool.lab.state)).load()
    return rt["vms"][pool.lab.vm(name)["uuid"]]


def lab_paths(pool):
    from lab.state import Paths
    return Paths(pool.lab.state)


def status(pool, name):
    return pool.status(name)


def wait_fresh(pool, name, after=0.0, timeout=RECOVERY):
    """The status is fresh, from a connection made after ``after``."""
    return wait_for(lambda: (lambda s: s if s and s.state == st.FRESH and s.since >= int(after)
                             else None)(status(pool, name)),
                    timeout, what="%s fresh again" % name)


def wait_not_fresh(pool, name, timeout=RECOVERY):
    return wait_for(lambda: (lambda s: s if s and s.state != st.FRESH else None)(
        status(pool, name)), timeout, what="%s marked not fresh" % name)


def shown(pool, name):
    return ps_entries(pool.other_config(name).get(C.KEY_DOCKER_PS)) or {}


def wait_shown(pool, name, container, state, timeout=RECOVERY):
    return wait_for(lambda: shown(pool, name).get(container) == state, timeout,
                    what="%s shown as %r in %s's docker_ps" % (container, state, name))


def wait_gone(pool, name, container, timeout=RECOVERY):
    return wait_for(lambda: container not in shown(pool, name), timeout,
                    what="%s gone from %s's docker_ps" % (container, name))


def run_container(pool, name, container, *cmd):
    docker(pool.lab.vm(name), "run", "-d", "--name", container, RUNNER,
           *(cmd or ("sleep", "3600")))


def check_fresh_means_true(pool, name, container, state, samples=10):
    """Whenever the status says fresh, the change is shown: polled until the status was
    seen fresh ``samples`` times (it must become fresh within RECOVERY)."""
    deadline = time.monotonic() + RECOVERY
    fresh = 0
    while fresh < samples:
        assert time.monotonic() < deadline, "%s never shown fresh (%s)" % (name, status(
            pool, name))
        s = status(pool, name)
        if s and s.state == st.FRESH:
            fresh += 1
            assert shown(pool, name).get(container) == state, (s, shown(pool, name))
        time.sleep(0.05)


def monitor_pid(pool, host):
    from lab.state import Runtime
    return Runtime(lab_paths(pool)).load()["pids"]["monitor-" + host][0]


def ask_monitor(pool, host, verb):
    return helpers.ask_monitor(pool.lab, host, verb)


# ---------------------------------------------------------------- the normal life

def test_changes_propagate_and_other_keys_survive(pool):
    ref = pool.vm_ref("vm0")
    pool.call("VM.add_to_other_config", ref, "someone-else", "keep me")
    run_container(pool, "vm0", "life")
    wait_shown(pool, "vm0", "life", C.STATUS_UP, timeout=5)
    docker(pool.lab.vm("vm0"), "pause", "life")
    wait_shown(pool, "vm0", "life", C.STATUS_PAUSED, timeout=5)
    docker(pool.lab.vm("vm0"), "rm", "-f", "life")
    wait_gone(pool, "vm0", "life", timeout=5)
    oc = pool.other_config("vm0")
    assert oc["someone-else"] == "keep me"
    s = st.decode(oc[C.KEY_STATUS])
    assert s.state == st.FRESH and s.vm == pool.lab.vm("vm0")["uuid"]
    assert s.host == pool.lab.host(pool.resident_host("vm0"))["uuid"]
    for key in (C.KEY_DOCKER_INFO, C.KEY_DOCKER_VERSION):
        assert oc[key].startswith(C.XML_DECLARATION)


def test_plugin_calls_use_the_warm_connection(pool):
    vm = pool.lab.vm("vm1")
    host = pool.resident_host("vm1")
    run_container(pool, "vm1", "fast")
    top = pool.plugin("get_top", host=host, vmuuid=vm["uuid"], object="fast")
    assert top.startswith("True" + C.XML_DECLARATION + "<docker_top>")
    assert "(plugin fast path): ok" in monitor_log(pool.lab, host)
    try:
        pool.plugin("stop", host=host, vmuuid=vm["uuid"], container="nosuchthing")
        raise AssertionError("stop of a missing container succeeded")
    except Exception as error:
        assert getattr(error, "details", [None])[0] == C.ERR_NO_SUCH_CONTAINER, error
    # from the other host: forwarded, then served by the resident host's monitor
    other = [h for h in ("host0", "host1") if h != host][0]
    assert pool.plugin("stop", host=other, vmuuid=vm["uuid"], container="fast") == "True"
    wait_shown(pool, "vm1", "fast", "Exited (137)", timeout=20)
    docker(vm, "rm", "-f", "fast")


def test_burst_of_100_containers_is_coalesced(pool):
    vm = pool.lab.vm("vm1")
    before = ask_monitor(pool, pool.resident_host("vm1"), "status")
    started = time.time()
    script = ("for i in $(seq 100); do docker run -d --name burst$i %s true >/dev/null; "
              "docker rm -f burst$i >/dev/null; done" % RUNNER)
    subprocess.run(["sh", "-c", script], check=True, timeout=300,
                   env=dict(os.environ, DOCKER_HOST="unix://" + vm["docker_socket"]))
    run_container(pool, "vm1", "afterburst")
    wait_shown(pool, "vm1", "afterburst", C.STATUS_UP, timeout=10)
    elapsed = time.time() - started
    assert not [n for n in shown(pool, "vm1") if n and n.startswith("burst")]
    after = ask_monitor(pool, pool.resident_host("vm1"), "status")
    mine = [v for v in after["vms"] if v["vm"] == vm["uuid"]][0]
    assert mine["events"] >= 400            # create, start, die, destroy (+ kill) each
    batches = after["monitor"]["writes"]["batches"] - before["monitor"]["writes"]["batches"]
    # at most about one write per second for this VM (+ the other VM's heartbeats)
    assert batches <= elapsed + 3, (batches, elapsed)


def test_random_lifecycle_bursts_converge(pool):
    """Whatever the order and pace of changes, docker_ps ends up showing the engine's
    truth (the full resync is 15 minutes away: only event handling can do it)."""
    vm = pool.lab.vm("vm0")
    names = ["conv%d" % n for n in range(2)]
    for name in names:
        run_container(pool, "vm0", name)
    ids = [docker(vm, "inspect", "-f", "{{.Id}}", name) for name in names]
    name_of = dict(zip(ids, names))
    status_of = {"running": C.STATUS_UP, "paused": C.STATUS_PAUSED, "exited": "Exited (137)"}
    with DockerClient(unix_connector(vm["docker_socket"]), vm="direct") as client:
        bursts = Bursts(client, ids)
        for _ in range(20):
            calls = bursts.play()
            want = dict((name_of[cid], status_of[state])
                        for cid, state in bursts.states.items())
            wait_for(lambda: dict((n, shown(pool, "vm0").get(n)) for n in names) == want,
                     15, what="docker_ps to show %s after %s" % (want, calls))
    docker(vm, "rm", "-f", *names)


def test_big_vm_keeps_required_fields_and_says_how_many_are_shown(pool):
    """More containers than one XAPI value holds: every entry written keeps what XO and
    XenCenter show, exited ones are left out first, the status says N of M, get_ps
    lists them all."""
    vm = pool.lab.vm("vm1")
    long_command = "x" * 1000       # about 1.2 kB per entry: 300 of them do not fit
    script = ("for i in $(seq 300); do docker create --name big$i %s sleep %s$i "
              ">/dev/null; done" % (RUNNER, long_command))
    subprocess.run(["sh", "-c", script], check=True, timeout=600,
                   env=dict(os.environ, DOCKER_HOST="unix://" + vm["docker_socket"]))
    run_container(pool, "vm1", "bigrunning")
    try:
        status = wait_for(lambda: (lambda s: s if s and s.shown and s.shown[1] >= 301
                                   else None)(pool.status("vm1")), 60,
                          what="the status to say how many containers docker_ps shows")
        wait_shown(pool, "vm1", "bigrunning", C.STATUS_UP, timeout=30)  # running ones first
        status = pool.status("vm1")
        shown, total = status.shown
        doc = pool.other_config("vm1")[C.KEY_DOCKER_PS]
        dom = xml.dom.minidom.parseString(doc.encode("utf-8"))
        entries = dom.getElementsByTagName("entry")
        assert len(entries) == shown < total
        for entry in entries:
            fields = [n.tagName for n in entry.childNodes if n.nodeType == n.ELEMENT_NODE]
            assert fields[:7] == ["id", "names", "container", "image", "command", "created",
                                  "status"], fields
        listed = json.loads(pool.plugin("get_ps", host=pool.resident_host("vm1"),
                                        vmuuid=vm["uuid"])[4:])
        assert len(listed) == total
    finally:
        script = "docker rm -f $(docker ps -aq --filter name=big) >/dev/null"
        subprocess.run(["sh", "-c", script], timeout=600,
                       env=dict(os.environ, DOCKER_HOST="unix://" + vm["docker_socket"]))
    wait_for(lambda: (lambda s: s and s.shown is None)(pool.status("vm1")), 60,
             what="the status to drop its count once all fit")


# ---------------------------------------------------------------- faults

def test_docker_engine_restarted(pool):
    from lab import vm as labvm
    s = spec(pool, "vm0")
    labvm.stop_engine(s)
    down = wait_not_fresh(pool, "vm0", timeout=10)
    assert "Docker" in down.reason or "docker" in down.reason, down
    restarted = time.time()
    labvm.start_engine(lab_paths(pool), s)
    run_container(pool, "vm0", "afterengine")
    wait_fresh(pool, "vm0", after=restarted - 1)
    wait_shown(pool, "vm0", "afterengine", C.STATUS_UP)
    assert time.time() - restarted < RECOVERY + 5


def test_sshd_killed_and_restarted(pool):
    from lab import vm as labvm
    s = spec(pool, "vm0")
    labvm.stop_sshd(s)
    wait_not_fresh(pool, "vm0", timeout=10)
    run_container(pool, "vm0", "duringssh")      # the engine still runs: a change we miss
    restarted = time.time()
    labvm.start_sshd(lab_paths(pool), s)
    # from the first moment the status says fresh again, the missed change is shown
    check_fresh_means_true(pool, "vm0", "duringssh", C.STATUS_UP)
    wait_fresh(pool, "vm0", after=restarted - 1)
    wait_shown(pool, "vm0", "duringssh", C.STATUS_UP, timeout=5)


def test_vm_rebooted(pool):
    ref = pool.vm_ref("vm0")
    domid = pool.call("VM.get_domid", ref)
    started = time.time()
    pool.call("VM.clean_reboot", ref)
    assert pool.call("VM.get_domid", ref) != domid
    wait_fresh(pool, "vm0", after=started)
    run_container(pool, "vm0", "afterreboot")
    wait_shown(pool, "vm0", "afterreboot", C.STATUS_UP, timeout=10)


def test_vm_migrated_to_the_other_host(pool):
    ref = pool.vm_ref("vm0")
    source = pool.resident_host("vm0")
    target = [h for h in ("host0", "host1") if h != source][0]
    started = time.time()
    pool.call("VM.pool_migrate", ref, pool.host_ref(target), {"live": "true"})
    s = wait_for(lambda: (lambda s: s if s and s.host == pool.lab.host(target)["uuid"]
                          and s.state == st.FRESH else None)(status(pool, "vm0")),
                 RECOVERY, what="the target host's monitor takes over")
    assert s.since >= int(started)
    run_container(pool, "vm0", "aftermigrate")
    wait_shown(pool, "vm0", "aftermigrate", C.STATUS_UP, timeout=10)
    uuid = pool.lab.vm("vm0")["uuid"]
    old = ask_monitor(pool, source, "status")
    assert uuid not in [v["vm"] for v in old["vms"]]
    new = ask_monitor(pool, target, "status")
    assert uuid in [v["vm"] for v in new["vms"]]
    # the old host keeps its hands off: its status stays the target's
    time.sleep(2)
    assert status(pool, "vm0").host == pool.lab.host(target)["uuid"]


def test_xapi_restarted(pool):
    lab_cmd("restart", "xapi", "--state", pool.lab.state)
    run_container(pool, "vm1", "afterxapi")
    wait_shown(pool, "vm1", "afterxapi", C.STATUS_UP)
    assert status(pool, "vm1").state == st.FRESH


def test_monitor_killed_and_restarted(pool):
    host = pool.resident_host("vm1")
    os.kill(monitor_pid(pool, host), signal.SIGKILL)
    run_container(pool, "vm1", "whiledead")
    restarted = time.time()
    lab_cmd("restart", "monitor", "--state", pool.lab.state, "--host", host)
    wait_fresh(pool, "vm1", after=restarted - 1)
    wait_shown(pool, "vm1", "whiledead", C.STATUS_UP, timeout=10)


def test_network_cut_and_restored(pool):
    from lab import vm as labvm
    s = spec(pool, "vm1")
    run_container(pool, "vm1", "beforecut")
    wait_shown(pool, "vm1", "beforecut", C.STATUS_UP, timeout=10)
    cut = time.time()
    labvm.set_network(s, False)
    try:
        run_container(pool, "vm1", "duringcut")
        down = wait_not_fresh(pool, "vm1", timeout=RECOVERY)
        noticed = time.time() - cut
        # (a key is rewritten as remove + add: a reader may see it absent for a moment)
        wait_for(lambda: (lambda s: s is not None and s.state == st.UNREACHABLE)(
            status(pool, "vm1")), RECOVERY, what="unreachable after the grace period")
        wait_for(lambda: pool.messages("vm1"), 10, what="a message on the VM")
        assert "duringcut" not in shown(pool, "vm1")   # not seen: and not shown as fresh
        assert down.since >= int(cut) - 1
        # the last known list says its states are unknown: no Stop or Restart offered
        unknown = wait_for(lambda: (lambda e: e if e and all(
            v.startswith("Unknown (unreachable since ") for v in e.values()) else None)(
                shown(pool, "vm1")), 10, what="every entry's state said to be unknown")
        assert "beforecut" in unknown
    finally:
        labvm.set_network(s, True)
    restored = time.time()
    wait_fresh(pool, "vm1", after=restored - 1)
    wait_shown(pool, "vm1", "duringcut", C.STATUS_UP, timeout=5)
    wait_shown(pool, "vm1", "beforecut", C.STATUS_UP, timeout=5)
    docker(pool.lab.vm("vm1"), "rm", "-f", "beforecut", "duringcut")
    wait_for(lambda: not pool.messages("vm1"), 10, what="the message removed")
    assert noticed < 3 * SETTINGS["tcp_keepalive"] + 5, noticed


def test_halted_vm_and_copies_show_no_containers(pool):
    uuid0 = pool.lab.vm("vm0")["uuid"]
    ref0 = pool.vm_ref("vm0")
    run_container(pool, "vm0", "parent")
    wait_shown(pool, "vm0", "parent", C.STATUS_UP, timeout=10)
    # copies made while no monitor runs carry vm0's documents
    for host in ("host0", "host1"):
        os.kill(monitor_pid(pool, host), signal.SIGKILL)
    snap = pool.call("VM.snapshot", ref0, "vm0-snap")
    clone = pool.call("VM.clone", snap, "vm0-clone")
    assert C.KEY_DOCKER_PS in pool.other_config(clone)
    clone_uuid = pool.call("VM.get_uuid", clone)
    lab_cmd("restart", "monitor", "--state", pool.lab.state)
    # the coordinator wipes halted copies
    for ref in (snap, clone):
        wait_for(lambda: not (set(pool.other_config(ref)) & set(C.DOCUMENT_KEYS
                                                                + (C.KEY_STATUS,))),
                 RECOVERY, what="documents of a copy wiped")
    # a running copy (registered: it inherited the key) gets its parent's documents
    # written on it: its host's monitor wipes them, then says why it sees nothing
    clone2 = pool.call("VM.clone", snap, "vm0-clone2")
    clone2_uuid = pool.call("VM.get_uuid", clone2)
    pool.call("VM.set_is_a_template", clone2, False)   # a VM made from the snapshot
    pool.call("VM.start_on", clone2, pool.host_ref("host1"), False, False)
    try:
        wait_for(lambda: pool.status(clone2), RECOVERY, what="the running clone's status")
        parent = pool.other_config(ref0)
        for key in (C.KEY_DOCKER_PS, C.KEY_STATUS):
            pool.call("VM.remove_from_other_config", clone2, key)
            pool.call("VM.add_to_other_config", clone2, key, parent[key])
        # what was written names the parent (the monitor may already be wiping it)
        assert st.decode(parent[C.KEY_STATUS]).vm == uuid0
        s = wait_for(lambda: (lambda s: s if s and s.vm == clone2_uuid else None)(
            pool.status(clone2)), RECOVERY, what="the copied status replaced")
        assert s.state != st.FRESH and "no IP address" in s.reason, s
        wait_for(lambda: C.KEY_DOCKER_PS not in pool.other_config(clone2), 10,
                 what="the copied docker_ps wiped")
    finally:
        pool.call("VM.hard_shutdown", clone2)
    assert uuid0 != clone_uuid
    wait_fresh(pool, "vm0")
    # a halted VM has no live container list
    pool.call("VM.clean_shutdown", ref0)
    wait_for(lambda: C.KEY_DOCKER_PS not in pool.other_config(ref0), RECOVERY,
             what="documents of the halted VM removed")
    started = time.time()
    pool.call("VM.start_on", ref0, pool.host_ref("host0"), False, False)
    wait_fresh(pool, "vm0", after=started)
    assert "parent" in shown(pool, "vm0")


def test_deregister_and_register(pool):
    vm = pool.lab.vm("vm1")
    host = pool.resident_host("vm1")
    pool.plugin("deregister", vmuuid=vm["uuid"])
    time.sleep(2)
    oc = pool.other_config("vm1")
    assert not set(oc) & set(C.DOCUMENT_KEYS + (C.KEY_STATUS,)), sorted(oc)
    assert vm["uuid"] not in [v["vm"] for v in ask_monitor(pool, host, "status")["vms"]]
    started = time.time()
    pool.plugin("register", vmuuid=vm["uuid"])
    wait_fresh(pool, "vm1", after=started - 1)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-x", "-v"] + sys.argv[1:]))
