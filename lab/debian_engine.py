"""Docker Engines from Debian's newer docker.io (trixie, sid), beside the machine's 20.10.

Each suite is debootstrapped once into CACHE/<suite> (docker.io, containerd, runc,
iptables, procps from that suite). An engine runs that root's dockerd in a private mount
namespace whose root is a throw-away overlay of it, so its containerd, shims and runc come
from the root; only the host directories it is given (socket, data, exec, pidfile,
/etc/docker) are bound in, at the same paths. Every mount vanishes with its processes.

    root = prepare("sid", CACHE_DIR)
    engine = start(root, tempfile.mkdtemp(dir="/tmp"))   # waits for GET /_ping
    subprocess.run([HOST_DOCKER, "version"], env=engine.env)
    stop(engine)                                         # by pid; checks nothing is left

Check: python -m lab.debian_engine check trixie|sid
"""
import argparse
import collections
import fcntl
import glob
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile

from lab import proc

SUITES = ("trixie", "sid")
MIRROR = "http://deb.debian.org/debian"
# procps: dockerd runs `ps` for GET /containers/{id}/top (minbase has none)
PACKAGES = "docker.io,containerd,runc,iptables,procps"
CACHE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "build", "engines")
# in the root: `dockerd --version` and the package list; written last, before the rename
STAMP = ".xsc-engine-stamp"
SCRIPTS = "/usr/share/debootstrap/scripts"
# the machine's Docker 20.10 CLI (/usr/local/bin/docker, earlier on PATH, may be another one)
HOST_DOCKER = "/usr/bin/docker"
BUSYBOX = "/bin/busybox"


# ---------------------------------------------------------------- the root

def prepare(suite, cache_dir=CACHE_DIR):
    """The path of a ready root of `suite` under cache_dir, debootstrapping it if needed."""
    if suite not in SUITES:
        raise ValueError("unknown suite %r (one of %s)" % (suite, ", ".join(SUITES)))
    os.makedirs(cache_dir, exist_ok=True)
    final = os.path.join(os.path.realpath(cache_dir), suite)
    tmp = final + ".tmp"
    # one builder per suite at a time: a .tmp we find while holding the lock is stale
    with open(final + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _remove_tree(tmp)
        if _stamp(final)[1:] == ["packages: " + PACKAGES]:
            return final
        _debootstrap(suite, tmp, final + ".log")
        _trim(tmp)
        version = subprocess.run(["chroot", tmp, "/usr/sbin/dockerd", "--version"],
                                 stdout=subprocess.PIPE, check=True).stdout.decode().strip()
        with open(os.path.join(tmp, STAMP), "w") as f:
            f.write("%s\npackages: %s\n" % (version, PACKAGES))
        _remove_tree(final)  # one with another package list, or junk without a stamp
        os.rename(tmp, final)
    return final


def _stamp(root):
    try:
        with open(os.path.join(root, STAMP)) as f:
            return f.read().splitlines()
    except OSError:
        return []


def root_version(root):
    """What `dockerd --version` said in the root when it was prepared."""
    return _stamp(root)[0]


def _debootstrap(suite, target, log_path):
    if not shutil.which("debootstrap"):
        _apt_install("debootstrap")
    argv = ["debootstrap", "--variant=minbase", "--include=" + PACKAGES, suite, target, MIRROR]
    if not os.path.exists(os.path.join(SCRIPTS, suite)):
        # an older debootstrap without this suite's script: every current suite uses sid's
        argv.append(os.path.join(SCRIPTS, "sid"))
    # debootstrap itself installs policy-rc.d (exit 101) and a fake start-stop-daemon
    # while it configures packages, so docker.io's postinst starts nothing; no systemd runs
    # in the root (its /run has no systemd/system), so deb-systemd-invoke does nothing.
    with open(log_path, "wb") as log:
        res = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    # debootstrap unmounts its /proc, /sys, /dev/pts on exit; make sure, even after a failure
    _unmount_below(target)
    if res.returncode != 0:
        with open(log_path, errors="replace") as f:
            tail = f.read()[-3000:]
        raise RuntimeError("debootstrap %s failed (%d), log %s:\n%s"
                           % (suite, res.returncode, log_path, tail))


def _apt_install(package):
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(["apt-get", "install", "-y", package], env=env).returncode != 0:
        proc.run(["apt-get", "update"], env=env)  # stale package lists
        proc.run(["apt-get", "install", "-y", package], env=env)


def _trim(root):
    """Drop apt's caches (debs, lists) and keep later apt runs in the root from starting
    services (debootstrap removes its own policy-rc.d when it is done)."""
    for rel in ("var/cache/apt/archives", "var/cache/apt/archives/partial",
                "var/cache/apt", "var/lib/apt/lists", "var/lib/apt/lists/partial"):
        d = os.path.join(root, rel)
        for name in os.listdir(d) if os.path.isdir(d) else ():
            path = os.path.join(d, name)
            if os.path.isfile(path) and name != "lock":
                os.unlink(path)
    policy = os.path.join(root, "usr/sbin/policy-rc.d")
    with open(policy, "w") as f:
        f.write("#!/bin/sh\n# xscontainer-ng: never start services in this root\nexit 101\n")
    os.chmod(policy, 0o755)


# ---------------------------------------------------------------- an engine

# $1 root, $2 etc_docker, then host dirs up to "--", then dockerd's argv.
# The overlay (its writable layer on a tmpfs) gives mount points without touching the shared
# root. pivot_root, not chroot: `docker exec` (setns) lands in the mount namespace's root,
# which after a mere chroot would be the machine's / rather than the container's. A private
# /run hides the machine's /run/containerd/containerd.sock (dockerd would use that
# containerd instead of starting its own) and holds the shims' sockets
# (/run/containerd/s/..., fixed paths whatever --exec-root says).
_SETUP = r'''set -e
root=$1 etc=$2; shift 2
top=$root/mnt m=$root/mnt/root
mount -t tmpfs -o mode=0755 xsc-engine "$top"
mkdir "$top/upper" "$top/work" "$m"
mount -t overlay -o "lowerdir=$root,upperdir=$top/upper,workdir=$top/work" xsc-engine "$m"
mount --rbind /proc "$m/proc"
mount --rbind /sys "$m/sys"
mount --rbind /dev "$m/dev"
mount -t tmpfs -o mode=0755 xsc-engine-run "$m/run"
while [ "$1" != -- ]; do mkdir -p "$1" "$m$1"; mount --bind "$1" "$m$1"; shift; done
shift
mkdir -p "$etc" "$m/etc/docker"
mount --bind "$etc" "$m/etc/docker"
cd "$m"
pivot_root . mnt
cd /
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
umount -l /mnt
exec "$@"
'''


def engine_argv(root, socket_path, data_root, exec_root, pidfile, etc_docker, extra=()):
    """argv that runs root's dockerd on the host paths given (created if missing),
    with root (an overlay of it) as the root of a private mount namespace.

    It has no bridge and touches neither iptables nor ip_forward; its containerd keeps its
    socket and state under exec_root, its data under data_root, so it coexists with any
    other engine. The process is dockerd itself (sh execs it). extra: more dockerd
    options (e.g. --shutdown-timeout=1, --group=docker).
    """
    paths = [os.path.realpath(p) for p in (socket_path, data_root, exec_root, pidfile,
                                           etc_docker)]
    socket_path, data_root, exec_root, pidfile, etc_docker = paths
    dirs = []
    for d in sorted({os.path.dirname(socket_path), data_root, exec_root,
                     os.path.dirname(pidfile), etc_docker}):
        if not any(d.startswith(parent + "/") for parent in dirs):  # already bound with it
            dirs.append(d)
    return (["unshare", "--mount", "--propagation", "private", "--",
             "sh", "-c", _SETUP, "xsc-engine", os.path.realpath(root), etc_docker]
            + dirs + ["--", "/usr/sbin/dockerd", "--host", "unix://" + socket_path,
                      "--data-root", data_root, "--exec-root", exec_root,
                      "--pidfile", pidfile, "--bridge=none", "--iptables=false",
                      "--ip6tables=false", "--ip-forward=false", "--log-level=warn"]
            + list(extra))


class Engine(collections.namedtuple("Engine", "pid socket workdir log")):
    @property
    def env(self):
        """Environment for a docker CLI talking to this engine."""
        return dict(os.environ, DOCKER_HOST="unix://" + self.socket,
                    DOCKER_CONFIG=os.path.join(self.workdir, "cli"))


def start(root, workdir, extra=(), timeout=60):
    """Start root's dockerd with everything under workdir; return once /_ping answers."""
    workdir = os.path.realpath(workdir)
    sock = os.path.join(workdir, "docker.sock")
    log = os.path.join(workdir, "dockerd.log")
    argv = engine_argv(root, sock, os.path.join(workdir, "data"),
                       os.path.join(workdir, "exec"), os.path.join(workdir, "dockerd.pid"),
                       os.path.join(workdir, "etc-docker"), extra)
    engine = Engine(proc.spawn(argv, log), sock, workdir, log)
    try:
        proc.wait_for(lambda: _up(engine), timeout, "dockerd of %s" % root)
    except Exception:
        stop(engine, check=False)
        with open(log, errors="replace") as f:
            raise RuntimeError("dockerd did not answer; its log:\n" + f.read()[-3000:])
    return engine


def _up(engine):
    if not proc.alive(engine.pid):
        raise RuntimeError("dockerd exited")
    return ping(engine.socket)


def stop(engine, check=True):
    """Stop dockerd by pid (SIGTERM, then SIGKILL), then whatever else names workdir
    (containerd, shims); unmount what is left below it. check: raise if anything remains."""
    proc.stop(engine.pid, engine.workdir, timeout=20)
    for pid in proc.pids_with(engine.workdir):
        proc.stop(pid, engine.workdir, timeout=5)
    # a dockerd that died (SIGKILL) leaves its containers running: their command lines do
    # not name workdir, their mount tables do
    for pid in _mounting(engine.workdir):
        proc.stop(pid, sig=signal.SIGKILL)
    # and their cgroups (dockerd's default parent, /docker), which runc would have removed
    containers = os.path.join(engine.workdir, "data", "containers")
    for cid in os.listdir(containers) if os.path.isdir(containers) else ():
        for cgroup in glob.glob("/sys/fs/cgroup/*/docker/" + cid):
            try:
                os.rmdir(cgroup)
            except OSError:  # still in use: leftovers() names the process
                pass
    _unmount_below(engine.workdir)
    if check:
        left = leftovers(engine.workdir)
        if left:
            raise RuntimeError("left behind under %s: %s" % (engine.workdir, left))


def leftovers(workdir):
    """Processes naming workdir in their command line or mount table, and mounts below
    it here; None when there are none."""
    pids = sorted(set(proc.pids_with(workdir)) | set(_mounting(workdir)))
    mounts = _mounts_below(workdir)
    return {"pids": pids, "mounts": mounts} if pids or mounts else None


def _mounting(workdir):
    """Pids in other mount namespaces whose mount table names workdir: the engine's own
    private one and its containers' (each lives as long as one of its processes)."""
    mine, found = os.readlink("/proc/self/ns/mnt"), []
    named = re.compile(re.escape(workdir) + "[/ ]")
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink("/proc/%s/ns/mnt" % name) != mine:
                with open("/proc/%s/mountinfo" % name) as f:
                    if named.search(f.read()):
                        found.append(int(name))
        except OSError:  # gone
            continue
    return found


# ---------------------------------------------------------------- the Engine API

class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path, timeout=5):
        super().__init__("docker", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def api_get(socket_path, path):
    """(status, body bytes) of GET path on the engine's socket."""
    conn = _UnixHTTP(socket_path)
    try:
        conn.request("GET", path)
        res = conn.getresponse()
        return res.status, res.read()
    finally:
        conn.close()


def ping(socket_path):
    try:
        return api_get(socket_path, "/_ping") == (200, b"OK")
    except OSError:
        return False


def version(socket_path):
    """The engine's GET /version: Version, ApiVersion, MinAPIVersion, Components..."""
    return json.loads(api_get(socket_path, "/version")[1])


# ---------------------------------------------------------------- mounts

def _mounts_below(path):
    """Mount points (of this mount namespace) at or below path, deepest first."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        points = {re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
                  for line in f}
    return sorted((p for p in points if p == path or p.startswith(path + "/")),
                  key=len, reverse=True)


def _unmount_below(path):
    for point in _mounts_below(path):
        subprocess.run(["umount", "-l", point], stderr=subprocess.DEVNULL)
    if _mounts_below(path):
        raise RuntimeError("could not unmount everything below " + path)


def _remove_tree(path):
    """Remove a (stale) root: first end what still runs in it (an interrupted debootstrap's
    dpkg), unmount what is below it (its /proc, /sys: never let rmtree walk into them)."""
    if not os.path.lexists(path):
        return
    for pid in _rooted_in(path):
        proc.stop(pid, timeout=5)
    _unmount_below(path)
    shutil.rmtree(path)


def _rooted_in(path):
    """Pids of processes chrooted at or below path."""
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            root = os.readlink("/proc/%s/root" % name)
        except OSError:
            continue
        if root == path or root.startswith(path + "/"):
            found.append(int(name))
    return found


# ---------------------------------------------------------------- the check

def busybox_tar(path):
    """A rootfs tar of the machine's static busybox with a few applet links."""
    with tarfile.open(path, "w") as tar:
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in ("sh", "sleep", "true", "echo"):
            link = tarfile.TarInfo("bin/" + applet)
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    return path


def check(suite, cache_dir=CACHE_DIR):
    root = prepare(suite, cache_dir)
    print("root %s: %s" % (root, root_version(root)))
    workdir = tempfile.mkdtemp(prefix="xsc-engine-%s-" % suite, dir="/tmp")
    engine = None
    try:
        engine = start(root, workdir)
        v = version(engine.socket)
        print("engine %(Version)s API %(ApiVersion)s (min %(MinAPIVersion)s)" % v)

        def docker(*args):
            return proc.run([HOST_DOCKER] + list(args), env=engine.env).strip()

        print(docker("version"))
        image = "xsc-busybox:check"
        docker("import", busybox_tar(os.path.join(workdir, "busybox.tar")), image)
        cid = docker("run", "-d", "--network", "none", image, "sleep", "1000")
        for op, status in (("pause", "paused"), ("unpause", "running"), ("kill", "exited")):
            docker(op, cid)
            got = docker("inspect", "-f", "{{.State.Status}}", cid)
            if got != status:
                raise RuntimeError("after docker %s: %s, not %s" % (op, got, status))
            print("docker %s: %s" % (op, got))
        docker("rm", "-f", cid)
    finally:
        if engine:
            stop(engine)
        _unmount_below(workdir)
        shutil.rmtree(workdir)
    left = leftovers(workdir)
    if left or _mounts_below(root):
        raise RuntimeError("left behind: %s %s" % (left, _mounts_below(root)))
    print("ok: %s engine stopped, nothing left under %s or %s" % (suite, workdir, root))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m lab.debian_engine", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["prepare", "check"])
    ap.add_argument("suite", choices=SUITES)
    ap.add_argument("--cache", default=CACHE_DIR, metavar="DIR")
    args = ap.parse_args(argv)
    if args.cmd == "prepare":
        print(prepare(args.suite, args.cache))
    else:
        check(args.suite, args.cache)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))  # run the finally: clean up
    main()
