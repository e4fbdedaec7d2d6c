"""Agent mode on the lab: the guest agent runs in each lab VM (its xenbus socket, its real
Docker Engine) and the plugin reaches it through xenstore only: no SSH, no key, no address."""
import json
import os

import pytest

from tests.labfixture import lab_cmd, start_lab, stop_lab
from tests.plugin.helpers import Plugin, docker, parse_xml, state_of, wait_for


@pytest.fixture(scope="module")
def agent_lab():
    lab = start_lab("--hosts", "2", "--vms", "2", "--agent")
    p = Plugin(lab)
    try:
        yield lab, p
    finally:
        p.close()
        stop_lab(lab)


def test_register_picks_the_agent_and_writes_the_documents(agent_lab):
    lab, p = agent_lab
    vm = lab.vm("vm0")
    name = "agentweb%d" % os.getpid()
    docker(vm, "run", "-d", "--name", name, "--stop-timeout", "1", lab.info["image"],
           "sleep", "600")
    # no prepare, no key: the agent is found through xenstore
    wait_for(lambda: _register(p, vm) == "True", timeout=30)
    wait_for(lambda: name in p.call("get_ps", vmuuid=vm["uuid"]), timeout=15)
    assert p.call("register", vmuuid=vm["uuid"]) == "True"  # writes the documents again
    oc = p.other_config("vm0")
    assert oc["xscontainer-transport"] == "agent"
    assert "xscontainer-hostkey" not in oc
    names = [e.firstChild.data for e in parse_xml(oc["docker_ps"]).getElementsByTagName("names")]
    assert name in names
    assert parse_xml(oc["docker_version"]).getElementsByTagName("ApiVersion")


def _register(p, vm):
    return p.call("register", vmuuid=vm["uuid"])


@pytest.mark.parametrize("host", ["resident", "other"])
def test_lifecycle_and_queries_through_the_request_channel(agent_lab, host):
    lab, p = agent_lab
    vm = lab.vm("vm0")
    name = "agentlc%s%d" % (host, os.getpid())
    cid = docker(vm, "run", "-d", "--name", name, "--stop-timeout", "1", lab.info["image"],
                 "sh", "-c", "trap 'exit 0' TERM; echo started; while :; do sleep 1; done")
    p.call("register", vmuuid=vm["uuid"], mode="agent")
    on = p.resident_host_name("vm0") if host == "resident" else p.other_host_name("vm0")
    try:
        wait_for(lambda: name in p.call("get_ps", host=on, vmuuid=vm["uuid"]), timeout=15)
        for fn, expected in (("pause", "paused"), ("unpause", "running"), ("stop", "exited"),
                             ("start", "running"), ("restart", "running")):
            assert p.call(fn, host=on, vmuuid=vm["uuid"], container=cid[:10]) == "True"
            assert state_of(vm, name) == expected, fn
        top = parse_xml(p.call("get_top", host=on, vmuuid=vm["uuid"], object=name)[4:])
        assert top.getElementsByTagName("PID")
        inspect = parse_xml(p.call("get_inspect", host=on, vmuuid=vm["uuid"], object=cid)[4:])
        assert inspect.getElementsByTagName("Id")[0].firstChild.data == cid
        logs = json.loads(p.call("get_logs", host=on, vmuuid=vm["uuid"], container=name)[4:])
        assert "started" in logs["logs"]
        assert p.fail("stop", host=on, vmuuid=vm["uuid"], container="nosuch")[0] == \
            "XSCONTAINER_NO_SUCH_CONTAINER"
    finally:
        docker(vm, "rm", "-f", name)


def test_a_verb_the_guest_did_not_allow_is_refused(agent_lab):
    lab, p = agent_lab
    vm = lab.vm("vm1")
    conf = os.path.join(lab.state, "vms", "vm1", "agent.conf")
    with open(conf, "w") as f:
        f.write("[requests]\nallow = top, inspect\n")
    lab_cmd("restart", "agent", "--state", lab.state, "--host", "vm1")
    name = "agentro%d" % os.getpid()
    docker(vm, "run", "-d", "--name", name, "--stop-timeout", "1", lab.info["image"],
           "sleep", "600")
    try:
        wait_for(lambda: _register(p, vm) == "True", timeout=30)
        wait_for(lambda: name in p.call("get_ps", vmuuid=vm["uuid"]), timeout=15)
        d = p.fail("stop", vmuuid=vm["uuid"], container=name)
        assert d[0] == "XSCONTAINER_AGENT_REFUSED" and d[1] == vm["uuid"] and d[2] == "stop", d
        assert state_of(vm, name) == "running"
        assert p.call("get_top", vmuuid=vm["uuid"], object=name).startswith("True<?xml")
    finally:
        docker(vm, "rm", "-f", name)
