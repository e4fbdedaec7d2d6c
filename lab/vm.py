"""Lab VMs: a network namespace, a real Docker Engine, a real OpenSSH server, a xenstore domain.

A VM is *provisioned* once by `lab up` (namespace, address, login user, host keys, config
files) and then *started*, *stopped*, *rebooted* or *migrated* by the XAPI simulator's VM
hook, as xenopsd would build and destroy domains.
"""
import os
import secrets
import shutil
import subprocess

from . import proc, xs

IMAGE = "xsclab/busybox:1"
DOCKER_SHUTDOWN_TIMEOUT = "2"


def spec_for(paths, index, name, uuid, net_base):
    """The fixed facts of one lab VM (stored in runtime.json, read by the hook)."""
    third = net_base + index // 64
    fourth = (index % 64) * 4
    run = paths.vm_run(name)
    return {
        "name": name,
        "uuid": uuid,
        "index": index,
        "netns": "xscng-%s-%s" % (paths.lab_id, name),
        "veth": "xh%sv%d" % (paths.lab_id, index),
        "host_ip": "10.231.%d.%d" % (third, fourth + 1),
        "ip": "10.231.%d.%d" % (third, fourth + 2),
        "host_ip6": "fd7a:%s:%x::1" % (paths.lab_id[:4], index),
        "ip6": "fd7a:%s:%x::2" % (paths.lab_id[:4], index),
        "user": "xl%sv%d" % (paths.lab_id, index),
        "password": secrets.token_urlsafe(12),
        "run": run,
        "home": os.path.join(run, "home"),
        "docker_socket": os.path.join(run, "docker.sock"),
        "xenbus_socket": os.path.join(run, "xenbus"),
        "data_root": os.path.join(paths.vm_state(name), "docker"),
        "exec_root": os.path.join(run, "exec"),
        "ssh_dir": os.path.join(run, "ssh"),
    }


# ---------------------------------------------------------------- provisioning

def provision(paths, rt, spec):
    """Create the VM's namespace, network, user and sshd config (idempotent)."""
    for d in (spec["run"], spec["ssh_dir"], paths.vm_state(spec["name"])):
        os.makedirs(d, exist_ok=True)
    os.chmod(spec["run"], 0o755)
    _make_netns(rt, spec)
    _make_user(rt, spec)
    _make_sshd_config(spec)


def _make_netns(rt, spec):
    ns, veth = spec["netns"], spec["veth"]
    rt.note("netns", ns)
    if not os.path.exists("/run/netns/" + ns):
        proc.run(["ip", "netns", "add", ns])
    rt.note("links", veth)
    if not os.path.exists("/sys/class/net/" + veth):
        proc.run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0",
                  "netns", ns])
        proc.run(["ip", "addr", "add", spec["host_ip"] + "/30", "dev", veth])
        proc.run(["ip", "-6", "addr", "add", spec["host_ip6"] + "/64", "dev", veth, "nodad"])
        proc.run(["ip", "-n", ns, "addr", "add", spec["ip"] + "/30", "dev", "eth0"])
        proc.run(["ip", "-n", ns, "-6", "addr", "add", spec["ip6"] + "/64", "dev", "eth0",
                  "nodad"])
        proc.run(["ip", "-n", ns, "link", "set", "lo", "up"])
        proc.run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        proc.run(["ip", "-n", ns, "route", "add", "default", "via", spec["host_ip"]])
    proc.run(["ip", "link", "set", veth, "up"])


def set_network(spec, up):
    """Cut or restore the VM's network (the host end of its link)."""
    proc.run(["ip", "link", "set", spec["veth"], "up" if up else "down"])


def _make_user(rt, spec):
    user = spec["user"]
    rt.note("users", user)
    if subprocess.run(["id", user], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode != 0:
        proc.run(["useradd", "--no-create-home", "--home-dir", spec["home"], "--shell",
                  "/bin/sh", "--groups", "docker", user])
    os.makedirs(spec["home"], exist_ok=True)
    shutil.chown(spec["home"], user, user)
    os.chmod(spec["home"], 0o700)
    proc.run(["chpasswd"], input=("%s:%s\n" % (user, spec["password"])).encode())


def host_fingerprint(spec):
    """The SHA256 fingerprint of the VM's ed25519 host key, as ssh-keygen -lf prints it."""
    out = subprocess.run(["ssh-keygen", "-lf", os.path.join(spec["ssh_dir"],
                                                            "ssh_host_ed25519_key.pub")],
                         stdout=subprocess.PIPE, check=True, universal_newlines=True).stdout
    return out.split()[1]


def _make_sshd_config(spec):
    d = spec["ssh_dir"]
    for kind in ("ed25519", "ecdsa"):
        key = os.path.join(d, "ssh_host_%s_key" % kind)
        if not os.path.exists(key):
            proc.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", spec["name"], "-f", key])
    lines = [
        "ListenAddress %s" % spec["ip"],
        "ListenAddress %s" % spec["ip6"],
        "HostKey %s/ssh_host_ed25519_key" % d,
        "HostKey %s/ssh_host_ecdsa_key" % d,
        "PidFile %s/sshd.pid" % d,
        "PasswordAuthentication yes",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "UsePAM no",
        "PermitRootLogin no",
        "AllowUsers %s" % spec["user"],
        "MaxSessions 64",
        "MaxStartups 100:30:200",
        "PrintMotd no",
        "Subsystem sftp internal-sftp",
        # what /var/run/docker.sock is in a real guest: this VM's own engine
        "SetEnv DOCKER_HOST=unix://%s" % spec["docker_socket"],
    ]
    with open(os.path.join(d, "sshd_config"), "w") as f:
        f.write("\n".join(lines) + "\n")


def deprovision(rt, spec):
    """Remove what provision made (the record in runtime.json drives `lab down`)."""
    stop_processes(spec)
    remove_netns(rt, spec["netns"], spec["veth"])
    remove_user(rt, spec["user"])


def remove_netns(rt, ns, veth):
    subprocess.run(["ip", "link", "del", veth], stderr=subprocess.DEVNULL)
    rt.forget("links", veth)
    if os.path.exists("/run/netns/" + ns):
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
    rt.forget("netns", ns)


def remove_user(rt, user):
    subprocess.run(["pkill", "-KILL", "-u", user], stderr=subprocess.DEVNULL)
    subprocess.run(["userdel", user], stderr=subprocess.DEVNULL)
    rt.forget("users", user)


# ---------------------------------------------------------------- power operations

def start(paths, spec, domid):
    """Boot the VM: engine, sshd, xenstore domain. Returns its guest-metrics networks."""
    start_engine(paths, spec)
    start_sshd(paths, spec)
    attach_xenstore(paths, spec, domid)
    return networks(spec)


def stop(paths, spec, domid):
    detach_xenstore(paths, spec, domid)
    stop_processes(spec)


def networks(spec):
    return {"0/ip": spec["ip"], "0/ipv4/0": spec["ip"], "0/ipv6/0": spec["ip6"]}


def _ns_argv(spec, argv):
    return ["nsenter", "--net=/run/netns/" + spec["netns"], "--"] + argv


def start_engine(paths, spec):
    pid = _pid_from(os.path.join(spec["run"], "dockerd.pid"), "dockerd")
    if pid:
        return pid
    os.makedirs(spec["data_root"], exist_ok=True)
    os.makedirs(spec["exec_root"], exist_ok=True)
    argv = _ns_argv(spec, private_etc_docker(
        os.path.join(paths.vm_state(spec["name"]), "etc-docker"), [
        "dockerd", "--host", "unix://" + spec["docker_socket"],
        "--data-root", spec["data_root"], "--exec-root", spec["exec_root"],
        "--pidfile", os.path.join(spec["run"], "dockerd.pid"), "--group", "docker",
        "--shutdown-timeout", DOCKER_SHUTDOWN_TIMEOUT, "--userland-proxy=false"]))
    proc.spawn(argv, paths.log("dockerd-" + spec["name"]))
    proc.wait_for(lambda: proc.unix_socket_ready(spec["docker_socket"]), 60,
                  "the Docker Engine of %s (log: %s)" % (spec["name"],
                                                         paths.log("dockerd-" + spec["name"])))
    ensure_image(paths, spec)
    return _pid_from(os.path.join(spec["run"], "dockerd.pid"), "dockerd")


def private_etc_docker(etc, argv):
    """argv (a dockerd) in its own mount namespace with etc as its /etc/docker: an engine
    keeps its identity (key.json) there, which each VM must have to itself, and its
    container mounts vanish with it."""
    os.makedirs(etc, exist_ok=True)
    return ["unshare", "--mount", "--propagation", "private", "--",
            "sh", "-c", 'mount --bind "$0" /etc/docker && exec "$@"', etc] + argv


def docker(spec, *args, **kw):
    """Run the docker CLI against this VM's engine."""
    env = dict(os.environ, DOCKER_HOST="unix://" + spec["docker_socket"])
    return proc.run(["docker"] + list(args), env=env, **kw)


def ensure_image(paths, spec):
    env = dict(os.environ, DOCKER_HOST="unix://" + spec["docker_socket"])
    if subprocess.run(["docker", "image", "inspect", IMAGE], env=env, stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode == 0:
        return
    build_image_tar(paths)
    docker(spec, "import", paths.image_tar, IMAGE)


def build_image_tar(paths):
    """A tarball of Debian's static busybox and its applet links (no registry is reachable)."""
    if os.path.exists(paths.image_tar):
        return
    root = paths.image_tar + ".d"
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(os.path.join(root, "bin"))
    os.makedirs(os.path.join(root, "tmp"))
    shutil.copy2("/bin/busybox", os.path.join(root, "bin", "busybox"))
    applets = subprocess.run(["/bin/busybox", "--list"], stdout=subprocess.PIPE,
                             check=True).stdout.decode().split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", os.path.join(root, "bin", applet))
    tmp = paths.image_tar + ".tmp"
    proc.run(["tar", "-C", root, "-cf", tmp, "."])
    os.replace(tmp, paths.image_tar)
    shutil.rmtree(root)


def start_sshd(paths, spec):
    pidfile = os.path.join(spec["ssh_dir"], "sshd.pid")
    pid = _pid_from(pidfile, "sshd")
    if pid:
        return pid
    os.makedirs("/run/sshd", exist_ok=True)  # Debian's privilege-separation dir
    cfg = os.path.join(spec["ssh_dir"], "sshd_config")
    # -D: stay in the foreground so the pid we record is sshd's own
    pid = proc.spawn(_ns_argv(spec, ["/usr/sbin/sshd", "-D", "-f", cfg, "-E",
                                     paths.log("sshd-" + spec["name"])]),
                     paths.log("sshd-" + spec["name"]))
    proc.wait_for(lambda: _listening(spec), 20, "sshd of %s" % spec["name"])
    return pid


def _listening(spec):
    out = subprocess.run(["ip", "netns", "exec", spec["netns"], "ss", "-Hltn",
                          "sport = :22"], stdout=subprocess.PIPE).stdout
    return spec["ip"].encode() in out


def _pid_from(pidfile, marker):
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if proc.alive(pid, marker) else None


def stop_sshd(spec):
    pid = _pid_from(os.path.join(spec["ssh_dir"], "sshd.pid"), "sshd")
    if pid:
        proc.stop(pid, "sshd")
    # sessions forked by that sshd run as the VM's user: they belong to this VM
    subprocess.run(["pkill", "-TERM", "-u", spec["user"]], stderr=subprocess.DEVNULL)


def stop_engine(spec):
    pid = _pid_from(os.path.join(spec["run"], "dockerd.pid"), "dockerd")
    if pid:
        proc.stop(pid, "dockerd", timeout=20)
    # containerd and shims started by that engine carry its exec-root in their command line
    for leftover in proc.pids_with(spec["exec_root"]):
        proc.stop(leftover, spec["exec_root"], timeout=5)
    unmount_below(spec["exec_root"])
    unmount_below(spec["data_root"])
    for stale in (spec["docker_socket"],):
        if os.path.exists(stale):
            os.unlink(stale)


def stop_processes(spec):
    stop_sshd(spec)
    stop_engine(spec)


def unmount_below(path):
    """Unmount everything mounted at or below path, deepest first."""
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        points = [line.split()[1].encode().decode("unicode_escape") for line in f]
    for mp in sorted((p for p in points if p == path or p.startswith(path + "/")),
                     key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)


# ---------------------------------------------------------------- xenstore domain

def attach_xenstore(paths, spec, domid):
    xs.create_domain(paths.xenstored_socket, int(domid), spec["uuid"], spec["name"])
    target = os.path.join(paths.xenbus_dir, str(domid))
    proc.wait_for(lambda: os.path.exists(target), 10, "xenbus socket of domain %s" % domid)
    link = spec["xenbus_socket"]
    tmp = link + ".new"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def detach_xenstore(paths, spec, domid):
    if domid is not None and int(domid) > 0:
        try:
            xs.destroy_domain(paths.xenstored_socket, int(domid), spec["uuid"])
        except (OSError, xs.XenstoreError):
            pass


def migrate(paths, spec, old_domid, new_domid):
    """Live migration: the guest keeps running; its domain id (and xenstore home) change."""
    detach_xenstore(paths, spec, old_domid)
    attach_xenstore(paths, spec, new_domid)
    return networks(spec)


def reboot(paths, spec, old_domid, new_domid):
    stop(paths, spec, old_domid)
    return start(paths, spec, new_domid)
