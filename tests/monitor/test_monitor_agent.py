"""xscontainer-monitor following a VM through its guest agent (xenstore, no SSH)."""
import time

import pytest

from dom0_plugin import constants as C
from dom0_plugin.monitor import status as st
from tests.labfixture import start_lab, stop_lab
from tests.monitor.helpers import Pool, docker, ps_entries, wait_for, write_monitor_config
from tests.labfixture import lab_cmd


@pytest.fixture(scope="module")
def pool():
    lab = start_lab("--hosts", "1", "--vms", "1", "--agent")
    try:
        write_monitor_config(lab, "host0", {"grace_seconds": 5, "log_level": "DEBUG"})
        lab_cmd("restart", "monitor", "--state", lab.state)
        p = Pool(lab)
        vm = lab.vm("vm0")
        wait_for(lambda: _try_register(p, vm["uuid"]), 30, what="agent-mode registration")
        yield p
    finally:
        stop_lab(lab)


def _try_register(pool, uuid):
    try:
        pool.plugin("register", vmuuid=uuid, mode="agent")
        return True
    except Exception:
        return False


def fresh_since(pool, after):
    s = pool.status("vm0")
    return s if s and s.state == st.FRESH and s.since >= int(after) else None


def test_follows_through_the_agent(pool):
    wait_for(lambda: fresh_since(pool, 0), 30, what="fresh through the agent")
    vm = pool.lab.vm("vm0")
    docker(vm, "run", "-d", "--name", "viaagent", "xsclab/busybox:1", "sleep", "3600")
    wait_for(lambda: (ps_entries(pool.other_config("vm0").get(C.KEY_DOCKER_PS)) or {})
             .get("viaagent") == C.STATUS_UP, 30, what="the container shown")
    docker(vm, "pause", "viaagent")
    wait_for(lambda: (ps_entries(pool.other_config("vm0").get(C.KEY_DOCKER_PS)) or {})
             .get("viaagent") == C.STATUS_PAUSED, 30, what="the pause shown")


def test_agent_stopped_and_started(pool):
    from lab import pool as labpool
    from lab.state import Paths, Runtime
    paths = Paths(pool.lab.state)
    rt = Runtime(paths)
    spec = rt.load()["vms"][pool.lab.vm("vm0")["uuid"]]
    labpool.stop_recorded(rt, "agent-vm0")
    wait_for(lambda: (lambda s: s and s.state != st.FRESH)(pool.status("vm0")), 60,
             what="not fresh once the agent stopped")
    started = time.time()
    labpool.start_agent(paths, rt, spec)
    wait_for(lambda: fresh_since(pool, started - 1), 30, what="fresh again")


def test_switching_transport_changes_how_the_vm_is_followed(pool):
    """Re-registering with another mode replaces the follower (SSH <-> agent)."""
    from tests.monitor.helpers import monitor_log
    vm = pool.lab.vm("vm0")
    pool.plugin("prepare", vmuuid=vm["uuid"], username=vm["ssh"]["user"],
                password=vm["ssh"]["password"], fingerprint=vm["ssh"]["fingerprint"])
    pool.plugin("register", vmuuid=vm["uuid"], mode="ssh")
    wait_for(lambda: "transport changed to ssh" in monitor_log(pool.lab, "host0"), 30,
             what="the monitor following over SSH")
    docker(vm, "run", "-d", "--name", "viassh", "xsclab/busybox:1", "sleep", "3600")
    wait_for(lambda: (ps_entries(pool.other_config("vm0").get(C.KEY_DOCKER_PS)) or {})
             .get("viassh") == C.STATUS_UP, 30, what="the container shown over SSH")
    pool.plugin("register", vmuuid=vm["uuid"], mode="agent")
    wait_for(lambda: "transport changed to agent" in monitor_log(pool.lab, "host0"), 30,
             what="the monitor following through the agent again")
    docker(vm, "pause", "viassh")
    wait_for(lambda: (ps_entries(pool.other_config("vm0").get(C.KEY_DOCKER_PS)) or {})
             .get("viassh") == C.STATUS_PAUSED, 30, what="the pause shown through the agent")
