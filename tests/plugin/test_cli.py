"""The `xscontainer` command: from an admin's machine (--server) and inside dom0."""
import json
import os
import subprocess
import sys

import pytest

from tests.plugin.helpers import docker

CLI = [os.path.join(os.path.dirname(sys.executable), "xscontainer")]


def cli(lab, *args, user=None, password=None):
    x = lab.info["xapi"]
    env = dict(os.environ, XSCONTAINER_SERVER=x["url"],
               XSCONTAINER_USER=user or x["username"],
               XSCONTAINER_PASSWORD=password or x["password"])
    res = subprocess.run(CLI + list(args), env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=120)
    return res.returncode, res.stdout.decode(), res.stderr.decode()


def in_dom0(lab, host, *args):
    """Run the CLI in a lab host's dom0, as an admin logged into that host would."""
    h = lab.host(host)
    env = {"PATH": "/sbin:/usr/sbin:/bin:/usr/bin", "PYTHONPATH": "/usr/lib/xscontainer-lab-site"}
    py = lab.info["dom0_python"]
    real = os.path.realpath(py)
    prefix = os.path.dirname(os.path.dirname(real))
    if prefix not in ("/usr", "/usr/local"):
        env["PYTHONHOME"] = prefix
    res = subprocess.run(["nsenter", "--mount=/proc/%d/ns/mnt" % h["ns_pid"], "--",
                          "/usr/bin/python3", "/usr/lib/xscontainer-ng/dom0_plugin/bin/xscontainer"]
                         + list(args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         timeout=120)
    return res.returncode, res.stdout.decode(), res.stderr.decode()


def test_ps_table_and_json(lab, enrolled):
    vm = lab.vm("vm0")
    name = "clips%d" % os.getpid()
    docker(vm, "run", "-d", "--name", name, "--stop-timeout", "1", lab.info["image"],
           "sleep", "300")
    try:
        rc, out, err = cli(lab, "ps", "vm0")
        assert rc == 0, err
        assert out.splitlines()[0].split()[:4] == ["ID", "NAME", "IMAGE", "STATUS"]
        assert name in out
        rc, out, err = cli(lab, "ps", vm["uuid"], "--json")
        assert rc == 0 and name in [c["name"] for c in json.loads(out)]
        rc, out, err = cli(lab, "stop", "vm0", name)
        assert rc == 0 and docker(vm, "inspect", "-f", "{{.State.Status}}", name) == "exited"
        rc, out, err = cli(lab, "start", "vm0", name)
        assert rc == 0
        rc, out, err = cli(lab, "top", "vm0", name)
        assert rc == 0 and "sleep 300" in out and "PID" in out.splitlines()[0]
    finally:
        docker(vm, "rm", "-f", name)


def test_exit_codes_scripts_can_rely_on(lab, enrolled):
    rc, out, err = cli(lab, "ps", "no-such-vm")
    assert rc == 2 and "no VM named" in err
    rc, out, err = cli(lab, "stop", "vm0", "nosuchcontainer")
    assert rc == 5 and "XSCONTAINER_NO_SUCH_CONTAINER" in err
    rc, out, err = cli(lab, "stop", "vm0", "bad/name")
    assert rc == 2 and "XSCONTAINER_INVALID_ARGUMENT" in err
    rc, out, err = cli(lab, "ps", "00000000-0000-0000-0000-000000000000")
    assert rc == 3 and "XSCONTAINER_NO_SUCH_VM" in err


def test_read_only_user_is_refused(lab, enrolled):
    x = lab.info["xapi"]
    rc, out, err = cli(lab, "stop", "vm0", "x", user=x["readonly_username"],
                       password=x["readonly_password"])
    assert rc == 1 and "RBAC_PERMISSION_DENIED" in err


def test_wrong_xapi_password(lab):
    rc, out, err = cli(lab, "list", password="wrong")
    assert rc == 1 and "SESSION_AUTHENTICATION_FAILED" in err


@pytest.mark.parametrize("host", ["host0", "host1"])
def test_cli_inside_dom0_uses_the_local_socket(lab, enrolled, host):
    rc, out, err = in_dom0(lab, host, "list", "--json")
    assert rc == 0, err
    names = {r["name"]: r for r in json.loads(out)}
    assert names["vm0"]["registered"] == "True"
    name = "dom0cli%s" % host
    vm = lab.vm("vm1")
    docker(vm, "run", "-d", "--name", name, lab.info["image"], "sleep", "300")
    try:
        rc, out, err = in_dom0(lab, host, "ps", "vm1", "--json")
        assert rc == 0, err
        listed = sorted(c["name"] for c in json.loads(out))
        assert name in listed
        assert listed == sorted(docker(vm, "ps", "-a", "--format", "{{.Names}}").split())
    finally:
        docker(vm, "rm", "-f", name)
