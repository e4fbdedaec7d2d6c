"""Many SSH-reachable "VMs" sharing one real Docker Engine, for the scale benchmark.

How they are made:
- one network namespace with one real OpenSSH sshd (listening on every address of the
  namespace) and one real Docker Engine, as a lab VM has;
- N addresses on the namespace's side of a veth pair (10.234.0.0/21): each VM record
  has its own address, so the monitor makes N separate TCP + SSH connections, each
  authenticated with the pool key and pinned to the sshd's host key, each running its
  own ``docker system dial-stdio`` sessions against the shared engine;
- N VM records in a XAPI simulator of their own (lab.xapi), started through XAPI; the
  simulator's VM hook reports each VM's address as its guest metrics.

Everything is made under /run/xscb-<id> and /tmp/xscb-<id> and removed by ``close``.
"""
import json
import os
import secrets
import shutil
import subprocess
import sys
import time

from bench.common import REPO
from lab import dom0 as labdom0
from lab import proc
from lab import vm as labvm

SUBNET = "10.234.0.%d"


def address(i):
    """Address of fake VM i (i = 0..1999)."""
    return "10.234.%d.%d" % (1 + i // 250, 1 + i % 250)


class FakeVms(object):
    def __init__(self, count):
        self.count = count
        self.id = secrets.token_hex(3)
        self.run = "/run/xscb-%s" % self.id
        self.state = "/tmp/xscb-%s" % self.id
        self.netns = "xscb-%s" % self.id
        self.veth = "xscb%s" % self.id
        self.user = "xscb%s" % self.id
        self.docker_socket = os.path.join(self.run, "docker.sock")
        self.exec_root = os.path.join(self.run, "exec")
        self.data_root = os.path.join(self.state, "docker")
        self.key_path = os.path.join(self.state, "poolkey")
        self.pids = {}
        self.sim = None

    # ------------------------------------------------------------ the guest side
    def up(self):
        for d in (self.run, self.state, os.path.join(self.run, "ssh"), self.exec_root,
                  self.data_root, os.path.join(self.run, "home")):
            os.makedirs(d, exist_ok=True)
        os.chmod(self.run, 0o755)
        self._network()
        self._user()
        self._engine()
        self._sshd()
        return self

    def _network(self):
        proc.run(["ip", "netns", "add", self.netns])
        proc.run(["ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eth0",
                  "netns", self.netns])
        proc.run(["ip", "addr", "add", SUBNET % 1 + "/21", "dev", self.veth])
        batch = ["addr add %s/21 dev eth0" % (SUBNET % 2)]
        batch += ["addr add %s/32 dev eth0" % address(i) for i in range(self.count)]
        batch += ["link set lo up", "link set eth0 up"]
        path = os.path.join(self.state, "ip.batch")
        with open(path, "w") as f:
            f.write("\n".join(batch) + "\n")
        proc.run(["ip", "-n", self.netns, "-batch", path])
        proc.run(["ip", "link", "set", self.veth, "up"])

    def _user(self):
        home = os.path.join(self.run, "home")
        proc.run(["useradd", "--no-create-home", "--home-dir", home, "--shell", "/bin/sh",
                  "--groups", "docker", self.user])
        proc.run(["usermod", "-p", "*", self.user])    # no password, but not locked
        proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench",
                  "-f", self.key_path])
        ssh = os.path.join(home, ".ssh")
        os.makedirs(ssh, exist_ok=True)
        shutil.copy(self.key_path + ".pub", os.path.join(ssh, "authorized_keys"))
        subprocess.run(["chown", "-R", self.user, home], check=True)
        os.chmod(home, 0o700)

    def _ns(self, argv):
        return ["nsenter", "--net=/run/netns/" + self.netns, "--"] + argv

    def _engine(self):
        log_path = os.path.join(self.state, "dockerd.log")
        self.pids["dockerd"] = proc.spawn(self._ns(labvm.private_etc_docker(
            os.path.join(self.state, "etc-docker"), [
                "dockerd", "--host", "unix://" + self.docker_socket, "--data-root",
                self.data_root, "--exec-root", self.exec_root, "--pidfile",
                os.path.join(self.run, "dockerd.pid"), "--group", "docker",
                "--shutdown-timeout", "2", "--userland-proxy=false", "--bridge", "none",
                "--iptables=false"])), log_path)
        proc.wait_for(lambda: proc.unix_socket_ready(self.docker_socket), 60, "dockerd")

        class Paths(object):
            image_tar = os.path.join(self.state, "image.tar")
        labvm.build_image_tar(Paths)
        env = dict(os.environ, DOCKER_HOST="unix://" + self.docker_socket)
        subprocess.run(["docker", "import", Paths.image_tar, labvm.IMAGE], env=env,
                       check=True, stdout=subprocess.DEVNULL)

    def _sshd(self):
        d = os.path.join(self.run, "ssh")
        self.host_key = os.path.join(d, "ssh_host_ed25519_key")
        proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.host_key])
        config = os.path.join(d, "sshd_config")
        with open(config, "w") as f:
            f.write("\n".join([
                "ListenAddress 0.0.0.0", "HostKey " + self.host_key,
                "PidFile %s/sshd.pid" % d, "PasswordAuthentication no",
                "KbdInteractiveAuthentication no", "PubkeyAuthentication yes", "UsePAM no",
                "AllowUsers " + self.user, "MaxSessions 20", "MaxStartups 4000",
                "PrintMotd no", "SetEnv DOCKER_HOST=unix://" + self.docker_socket]) + "\n")
        os.makedirs("/run/sshd", exist_ok=True)
        self.pids["sshd"] = proc.spawn(self._ns(["/usr/sbin/sshd", "-D", "-f", config, "-E",
                                                 os.path.join(self.state, "sshd.log")]),
                                       os.path.join(self.state, "sshd.out"))
        proc.wait_for(lambda: proc.tcp_ready(address(0), 22) if self.count else True, 20,
                      "bench sshd")

    def pin(self):
        with open(self.host_key + ".pub") as f:
            kind, b64 = f.read().split()[:2]
        return "%s %s" % (kind, b64)

    # ------------------------------------------------------------ XAPI
    def start_xapi(self):
        from lab.xapi import testing
        hook_dir = os.path.join(self.state, "hook")
        os.makedirs(hook_dir, exist_ok=True)
        hook = os.path.join(self.state, "vmhook")
        with open(hook, "w") as f:
            # args: op vm_uuid host_uuid domid [old_domid]: print the VM's guest metrics
            f.write('#!/bin/sh\n[ "$1" = stop ] || cat "%s/$2" 2>/dev/null\nexit 0\n'
                    % hook_dir)
        os.chmod(hook, 0o755)
        self.vm_uuids = []
        vms = []
        for i in range(self.count):
            uuid = "%08x-0000-4000-8000-%012x" % (i, i)
            self.vm_uuids.append(uuid)
            with open(os.path.join(hook_dir, uuid), "w") as f:
                json.dump({"networks": {"0/ip": address(i)}}, f)
            vms.append({"uuid": uuid, "name_label": "fake%d" % i, "host_uuid": None,
                        "power_state": "Halted"})
        workdir = os.path.join(self.state, "xapi")
        os.makedirs(workdir)
        config = testing.basic_config(workdir, n_hosts=1, vms=vms, vm_hook=[hook])
        self.host_uuid = config["hosts"][0]["uuid"]
        self.sim = testing.SimProcess(workdir, config).start(timeout=60)
        self.session = testing.login(self.sim, unix=True)
        x = self.session.xenapi
        with open(self.key_path) as f:
            pem = f.read()
        secret = x.secret.create({"value": pem})
        pool = x.pool.get_all()[0]
        x.pool.add_to_other_config(pool, "xscontainer-ssh-key-secret", x.secret.get_uuid(secret))
        self.host_ref = x.host.get_all()[0]
        return self

    def start_vms(self, first, last):
        """Register and start VMs first..last-1 through XAPI."""
        x = self.session.xenapi
        for i in range(first, last):
            ref = x.VM.get_by_uuid(self.vm_uuids[i])
            for key, value in (("xscontainer-username", self.user),
                               ("xscontainer-hostkey", self.pin()),
                               ("xscontainer-monitor", "True")):
                x.VM.add_to_other_config(ref, key, value)
            x.VM.start_on(ref, self.host_ref, False, False)

    # ------------------------------------------------------------ the monitor
    def start_monitor(self, python, settings):
        """The product's monitor, run as a dom0 would (Python 3.6, shipped wheels)."""
        vendor = os.path.join(self.state, "vendor")
        site = os.path.join(self.state, "site")
        labdom0.unpack(labdom0.fetch_wheels(labdom0.requirements()), vendor)
        labdom0.unpack(labdom0.fetch_wheels(["XenAPI"]), site)
        subprocess.run([python, "-m", "compileall", "-q", vendor, site,
                        os.path.join(REPO, "dom0_plugin")], stdout=subprocess.DEVNULL)
        self.monitor_socket = os.path.join(self.run, "monitor.sock")
        self.monitor_log = os.path.join(self.state, "monitor.log")
        argv = [python, os.path.join(REPO, "dom0_plugin", "bin", "xscontainer-monitor"),
                "--config", "/nonexistent", "--xapi-socket", self.sim.socket,
                "--host-uuid", self.host_uuid, "--socket", self.monitor_socket,
                "--log-file", self.monitor_log]
        for key, value in settings.items():
            argv += ["--set", "%s=%s" % (key, value)]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
               "PYTHONPATH": ":".join([REPO, vendor, site])}
        self.pids["monitor"] = proc.spawn(argv, os.path.join(self.state, "monitor.out"),
                                          env=env)
        proc.wait_for(lambda: os.path.exists(self.monitor_socket), 30, "the monitor")
        return self.pids["monitor"]

    def ask(self, verb="status"):
        from dom0_plugin import monitor_client
        return monitor_client.MonitorConnection(self.monitor_socket).request("", verb)

    # ------------------------------------------------------------ teardown
    def close(self):
        keep = os.path.join(REPO, "build", "bench-logs")  # for a look after the run
        os.makedirs(keep, exist_ok=True)
        for name in ("monitor.log", "monitor.out", "sshd.log", "dockerd.log"):
            try:
                shutil.copy(os.path.join(self.state, name), os.path.join(keep, name))
            except OSError:
                pass
        for name in ("monitor", "sshd"):
            if name in self.pids:
                proc.stop(self.pids[name], timeout=10)
        if self.sim is not None:
            self.sim.stop()
        if "dockerd" in self.pids:
            proc.stop(self.pids["dockerd"], "dockerd", timeout=20)
        for pid in proc.pids_with(self.exec_root):
            proc.stop(pid, self.exec_root, timeout=5)
        subprocess.run(["pkill", "-KILL", "-u", self.user], stderr=subprocess.DEVNULL)
        subprocess.run(["userdel", self.user], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "link", "del", self.veth], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "del", self.netns], stderr=subprocess.DEVNULL)
        labvm.unmount_below(self.run)
        labvm.unmount_below(self.state)
        shutil.rmtree(self.run, ignore_errors=True)
        shutil.rmtree(self.state, ignore_errors=True)


if __name__ == "__main__":
    env = FakeVms(int(sys.argv[1]) if len(sys.argv) > 1 else 3).up()
    try:
        env.start_xapi()
        print("up:", env.run, env.sim.socket)
        time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 1)
    finally:
        env.close()
