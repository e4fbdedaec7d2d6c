"""The guest package holds everything the agent needs: installed into a scratch root, the
agent runs from those files (system Python, the package's vendored Docker SDK, nothing from
the source tree) in a lab VM, and its report reaches VM.other_config."""
import os
import subprocess

import pytest

from tests import prereq
from lab import proc
from pack import names as N
from tests.labfixture import docker, start_lab, stop_lab, wait_for
from tests.pack.conftest import VERSION, run
from tests.plugin.helpers import Plugin, parse_xml

SYSTEM_PYTHON = "/usr/bin/python3"  # what a Debian guest has


@pytest.fixture(scope="module")
def guest_root(built, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("guest-root"))
    run(["dpkg", "-x", built["files"][N.agent_deb_name(VERSION)], root])
    return root


@pytest.fixture(scope="module")
def lab_without_agent():
    lab = start_lab("--hosts", "1", "--vms", "1")
    try:
        yield lab
    finally:
        stop_lab(lab)


def test_installed_agent_reports_to_the_pool(guest_root, lab_without_agent):
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        prereq.missing("no system python3 to play the guest's")
    lab = lab_without_agent
    vm = lab.vm("vm0")
    lib = os.path.join(guest_root, "usr/lib/xscontainer-agent")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
           # the launcher puts /usr/lib/xscontainer-agent first: here it lives under root
           "PYTHONPATH": "%s:%s" % (lib, os.path.join(lib, "vendor")),
           "PYTHONNOUSERSITE": "1"}
    where = subprocess.run([SYSTEM_PYTHON, "-c", "import guest_agent, docker; "
                            "print(guest_agent.__file__); print(docker.__file__)"],
                           env=env, cwd="/", stdout=subprocess.PIPE, check=True)
    assert all(line.startswith(guest_root) for line in where.stdout.decode().split())
    log = os.path.join(lab.state, "logs", "installed-agent.log")
    pid = proc.spawn(["nsenter", "--net=/run/netns/" + vm["netns"], "--", SYSTEM_PYTHON,
                      os.path.join(guest_root, "usr/bin/xscontainer-agent"),
                      "--xenbus", vm["xenbus_socket"], "--docker",
                      "unix://" + vm["docker_socket"], "--config",
                      os.path.join(guest_root, "etc/xscontainer-agent/agent.conf")],
                     log, env=env)
    p = Plugin(lab)
    try:
        name = "pkgagent%d" % os.getpid()
        docker(vm, "run", "-d", "--name", name, "--stop-timeout", "1", lab.info["image"],
               "sleep", "600")
        wait_for(lambda: p.call("register", vmuuid=vm["uuid"]) == "True"
                 and p.other_config("vm0").get("xscontainer-transport") == "agent",
                 timeout=30, what="the installed agent to be seen")
        doc = wait_for(lambda: (lambda d: d if name in d else None)(
            p.other_config("vm0").get("docker_ps", "")), timeout=30,
            what="docker_ps with the container")
        assert parse_xml(doc).documentElement.tagName == "docker_ps"
        # the default config keeps the request channel off
        d = p.fail("stop", vmuuid=vm["uuid"], container=name)
        assert d[0] == "XSCONTAINER_AGENT_REFUSED", d
    finally:
        p.close()
        proc.stop(pid, "xscontainer-agent")
        assert not proc.alive(pid)
