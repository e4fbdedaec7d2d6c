"""The lab pool as a whole: VMs that are real where it matters, driven through XAPI."""
import os
import socket
import subprocess
import time

import paramiko
import pytest

from tests.labfixture import docker, lab_cmd, start_lab, stop_lab




def ssh(vm, timeout=10):
    c = paramiko.SSHClient()
    c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    c.connect(vm["ssh"]["host"], port=vm["ssh"]["port"], username=vm["ssh"]["user"],
              password=vm["ssh"]["password"], look_for_keys=False, allow_agent=False,
              timeout=timeout, auth_timeout=timeout, banner_timeout=timeout)
    return c


def run_ssh(vm, cmd):
    c = ssh(vm)
    try:
        _, out, err = c.exec_command(cmd, timeout=30)
        return out.read().decode(), err.read().decode(), out.channel.recv_exit_status()
    finally:
        c.close()


def test_lab_json_has_the_documented_shape(lab):
    info = lab.info
    assert set(info["xapi"]) >= {"url", "unix_socket", "username", "password"}
    assert "_" not in info["xapi"]["unix_socket"]
    assert info["image"]
    assert len(info["hosts"]) == 2 and all({"uuid", "name", "plugin_dir"} <= set(h)
                                           for h in info["hosts"])
    assert os.path.exists(info["xenstored"]["dom0_socket"])
    for v in info["vms"]:
        assert {"uuid", "name", "host_uuid", "domid", "ip", "docker_socket", "ssh",
                "xenbus_socket"} <= set(v)
        assert set(v["ssh"]) >= {"host", "port", "user", "password"}


def test_vm_records_match_the_running_vms(lab):
    s = lab.session()
    try:
        for v in lab.reload()["vms"]:
            ref = s.xenapi.VM.get_by_uuid(v["uuid"])
            rec = s.xenapi.VM.get_record(ref)
            assert rec["power_state"] == "Running"
            assert rec["domid"] == str(v["domid"])
            host = s.xenapi.host.get_uuid(rec["resident_on"])
            assert host == v["host_uuid"]
            nets = s.xenapi.VM_guest_metrics.get_networks(rec["guest_metrics"])
            assert nets["0/ip"] == v["ip"]
        # VMs are spread over both hosts
        assert len({v["host_uuid"] for v in lab.info["vms"]}) == 2
    finally:
        s.xenapi.session.logout()


def test_each_vm_runs_its_own_engine_and_containers_stay_apart(lab):
    vm0, vm1 = lab.vm("vm0"), lab.vm("vm1")
    name = "iso-%d" % os.getpid()
    docker(vm0, "run", "-d", "--name", name, lab.info["image"], "sleep", "300")
    try:
        assert name in docker(vm0, "ps", "--format", "{{.Names}}").split()
        assert name not in docker(vm1, "ps", "-a", "--format", "{{.Names}}").split()
        assert docker(vm0, "info", "--format", "{{.ID}}") != docker(vm1, "info", "--format",
                                                                  "{{.ID}}")
    finally:
        docker(vm0, "rm", "-f", name)


def test_ssh_reaches_the_vms_own_engine(lab):
    vm0, vm1 = lab.vm("vm0"), lab.vm("vm1")
    name = "sshiso-%d" % os.getpid()
    docker(vm1, "run", "-d", "--name", name, lab.info["image"], "sleep", "300")
    try:
        out0, err0, rc0 = run_ssh(vm0, "docker ps -a --format '{{.Names}}'")
        out1, err1, rc1 = run_ssh(vm1, "docker ps -a --format '{{.Names}}'")
        assert rc0 == 0 and rc1 == 0, (err0, err1)
        assert name in out1.split() and name not in out0.split()
    finally:
        docker(vm1, "rm", "-f", name)


def test_docker_system_dial_stdio_over_ssh(lab):
    c = ssh(lab.vm("vm0"))
    try:
        chan = c.get_transport().open_session(timeout=10)
        chan.settimeout(10)
        chan.exec_command("docker system dial-stdio")
        chan.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
        data = b""
        while b"\r\n\r\nOK" not in data:
            chunk = chan.recv(4096)
            assert chunk, data
            data += chunk
        assert data.startswith(b"HTTP/1.1 200")
    finally:
        c.close()


def test_wrong_password_is_refused(lab):
    vm = dict(lab.vm("vm0"))
    vm["ssh"] = dict(vm["ssh"], password="not-the-password")
    with pytest.raises(paramiko.AuthenticationException):
        ssh(vm)


def test_guest_has_its_xenstore_domain(lab):
    vm = lab.vm("vm0")
    env = dict(os.environ, XENSTORED_PATH=lab.info["xenstored"]["dom0_socket"])
    out = subprocess.run(["xenstore-read", "/local/domain/%d/name" % vm["domid"]], env=env,
                         stdout=subprocess.PIPE, check=True).stdout.decode().strip()
    assert out == "vm0"
    perms = subprocess.run(["xenstore-ls", "-p", "/local/domain/%d" % vm["domid"]], env=env,
                           stdout=subprocess.PIPE, check=True).stdout.decode()
    assert "data" in perms
    assert os.path.exists(vm["xenbus_socket"])


def test_plugins_run_in_a_dom0_like_host(lab, tmp_path):
    """A plugin sees dom0's paths: Python 3.6 as python3, XenAPI + XenAPIPlugin importable,
    xapi_local() reaching the simulator, its own host in /etc/xensource-inventory."""
    host = lab.host("host1")
    body = r'''#!/usr/bin/env python3
import os, sys
import XenAPI, XenAPIPlugin

def probe(session, args):
    inv = open("/etc/xensource-inventory").read()
    me = [l.split("=", 1)[1].strip().strip("'") for l in inv.splitlines()
          if l.startswith("INSTALLATION_UUID")][0]
    ref = session.xenapi.host.get_by_uuid(me)
    return "%d.%d|%s|%s|%s|%s" % (sys.version_info[0], sys.version_info[1],
                                  session.xenapi.host.get_name_label(ref),
                                  sys.stdout.encoding, os.environ.get("HOME"), sorted(os.environ))

if __name__ == "__main__":
    XenAPIPlugin.dispatch({"probe": probe})
'''
    path = os.path.join(host["plugin_dir"], "labprobe")
    with open(path, "w") as f:
        f.write(body)
    os.chmod(path, 0o755)
    s = lab.session()
    try:
        h = s.xenapi.host.get_by_uuid(host["uuid"])
        out = s.xenapi.host.call_plugin(h, "labprobe", "probe", {})
    finally:
        os.unlink(path)
        s.xenapi.session.logout()
    version, name, encoding, home, env = out.split("|")
    if "3.6" in lab.info["dom0_python"]:
        assert version == "3.6"
    assert name == "host1"
    assert encoding.lower() in ("ascii", "ansi_x3.4-1968")
    assert home == "None"
    assert "'HOME'" not in env and "'USER'" not in env and "'PATH'" in env


def test_power_operations_change_the_vm_for_real(lab):
    s = lab.session()
    try:
        v = lab.vm("vm1")
        ref = s.xenapi.VM.get_by_uuid(v["uuid"])
        old_domid = v["domid"]
        s.xenapi.VM.clean_shutdown(ref)
        assert s.xenapi.VM.get_power_state(ref) == "Halted"
        assert s.xenapi.VM.get_domid(ref) == "-1"
        with pytest.raises(OSError):
            socket.create_connection((v["ip"], 22), timeout=2).close()
        assert not os.path.exists(v["docker_socket"])
        hosts = s.xenapi.host.get_all()
        target = [h for h in hosts if s.xenapi.host.get_uuid(h) == v["host_uuid"]][0]
        s.xenapi.VM.start_on(ref, target, False, False)
        v2 = lab.vm("vm1")
        assert v2["domid"] not in (None, old_domid)
        assert run_ssh(v2, "docker version --format '{{.Server.APIVersion}}'")[2] == 0
        # live migration: new host, new domid, the guest keeps running
        other = [h for h in hosts if h != target][0]
        s.xenapi.VM.pool_migrate(ref, other, {})
        v3 = lab.vm("vm1")
        assert v3["host_uuid"] == s.xenapi.host.get_uuid(other)
        assert v3["domid"] != v2["domid"]
        assert s.xenapi.VM.get_resident_on(ref) == other
        assert run_ssh(v3, "true")[2] == 0
        s.xenapi.VM.pool_migrate(ref, target, {})
    finally:
        s.xenapi.session.logout()


def test_status_reports_what_runs(lab):
    rc, out = lab_cmd("status", "--state", lab.state)
    assert "xapi" in out and "xenstored" in out and "vm0" in out
    assert "NOT RUNNING" not in out


def test_missing_debian_package_is_named(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("ip", "nsenter", "unshare", "useradd", "chpasswd", "mount", "ssh-keygen",
                 "xenstore-write", "docker"):
        src = subprocess.run(["sh", "-c", "command -v " + tool], stdout=subprocess.PIPE)
        if src.returncode == 0:
            os.symlink(src.stdout.decode().strip(), str(bindir / tool))
    env = dict(os.environ, PATH=str(bindir))
    import sys
    res = subprocess.run([sys.executable, "-m", "lab", "up", "--state", str(tmp_path / "s")],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                             os.path.abspath(__file__)))))
    out = res.stdout.decode()
    assert res.returncode == 2
    assert "docker.io" in out and "openssh-server" in out and "apt-get install" in out
    assert not (tmp_path / "s").exists()


def _leftovers(lab_id, run_dir, state):
    found = []
    if os.path.exists(run_dir):
        found.append(run_dir)
    if os.path.exists(state):
        found.append(state)
    if any(n.startswith("xscng-%s-" % lab_id) for n in os.listdir("/run/netns")
           if os.path.isdir("/run/netns")):
        found.append("netns")
    with open("/etc/passwd") as f:
        if any(l.startswith("xl%sv" % lab_id) for l in f):
            found.append("users")
    with open("/proc/self/mounts") as f:
        if any(run_dir in l or state in l for l in f):
            found.append("mounts")
    out = subprocess.run(["ps", "-eo", "args"], stdout=subprocess.PIPE).stdout.decode()
    if run_dir in out or state in out:
        found.append("processes")
    links = subprocess.run(["ip", "-o", "link"], stdout=subprocess.PIPE).stdout.decode()
    if "xh%sv" % lab_id in links:
        found.append("links")
    return found


def test_down_after_kill_9_of_up_still_cleans_everything():
    """`lab up` killed half-way (after the VMs' namespaces and engines exist)."""
    import json
    import signal
    import sys
    import tempfile
    state = tempfile.mkdtemp(prefix="xscng-kill-", dir="/tmp")
    os.rmdir(state)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p = subprocess.Popen([sys.executable, "-m", "lab", "up", "--state", state, "--vms", "1",
                          "--hosts", "1"], cwd=repo, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    rt = os.path.join(state, "runtime.json")
    while time.time() < deadline:
        try:
            with open(rt) as f:
                if "xapi" in json.load(f).get("pids", {}):
                    break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    with open(rt) as f:
        rec = json.load(f)
    lab_cmd("down", "--state", state)
    assert _leftovers(rec["lab_id"], rec["run_dir"], state) == []


def test_up_and_down_leave_nothing_behind():
    lab = start_lab("--hosts", "1", "--vms", "1", "--no-monitor")
    import json
    with open(os.path.join(lab.state, "runtime.json")) as f:
        rec = json.load(f)
    stop_lab(lab)
    assert _leftovers(rec["lab_id"], rec["run_dir"], lab.state) == []
