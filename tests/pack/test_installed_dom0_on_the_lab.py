"""The dom0 RPM holds everything it needs: the lab's hosts run the plugin and the monitor
from the files `rpm --root` installed, not from the source tree."""
import json
import os
import subprocess

import pytest

from tests.labfixture import start_lab, stop_lab
from tests.plugin.helpers import Plugin, docker, parse_xml, wait_for


@pytest.fixture(scope="module")
def installed_lab(dom0_root):
    lab = start_lab("--hosts", "2", "--vms", "1", "--dom0-root", dom0_root)
    try:
        yield lab
    finally:
        stop_lab(lab)


def test_plugin_and_monitor_run_from_the_installed_files(installed_lab, dom0_root):
    lab = installed_lab
    for h in lab.info["hosts"]:
        plugin_file = os.path.join(h["plugin_dir"], "xscontainer")
        assert not os.path.islink(plugin_file)
        with open(plugin_file) as a, open(os.path.join(
                dom0_root, "etc/xapi.d/plugins/xscontainer")) as b:
            assert a.read() == b.read()
        # the library seen by that host's dom0 is the installed tree
        out = subprocess.run(
            ["nsenter", "--mount=/proc/%d/ns/mnt" % h["ns_pid"], "--", "ls",
             "/usr/lib/xscontainer-ng/vendor/paramiko/__init__.py",
             "/usr/lib/xscontainer-ng/dom0_plugin/operations.py"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout.decode()
        assert "No such file" not in out, out
    p = Plugin(lab)
    try:
        vm = lab.vm("vm0")
        name = "installed%d" % os.getpid()
        docker(vm, "run", "-d", "--name", name, "--stop-timeout", "1", lab.info["image"],
               "sleep", "600")
        p.call("prepare", vmuuid=vm["uuid"], username=vm["ssh"]["user"],
               password=vm["ssh"]["password"], fingerprint=vm["ssh"]["fingerprint"])
        for host in ("host0", "host1"):  # resident host and forwarding
            assert p.call("register", host=host, vmuuid=vm["uuid"]) == "True"
            ps = json.loads(p.call("get_ps", host=host, vmuuid=vm["uuid"])[4:])
            assert name in [c["name"] for c in ps]
        assert p.call("stop", vmuuid=vm["uuid"], container=name) == "True"
        doc = p.other_config("vm0")["docker_ps"]
        assert parse_xml(doc).documentElement.tagName == "docker_ps"
        # the installed monitor keeps docker_ps live
        docker(vm, "start", name)
        wait_for(lambda: "<status>Up</status>" in p.other_config("vm0").get("docker_ps", ""),
                 timeout=30)
    finally:
        p.close()
