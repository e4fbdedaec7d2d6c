"""A private Docker Engine for the dom0 library tests.

It listens on its own Unix socket with its own data, exec and pid paths, makes no bridge
and touches no iptables rules; containers run with ``--network none``. The image is a
``docker import`` of Debian's static busybox. At the end the engine is stopped by pid,
anything left under its folder is killed (by pid) and unmounted, and the folder removed.
"""

import collections
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time

import pytest

DOCKERD = "/usr/sbin/dockerd"
BUSYBOX = "/bin/busybox"
IMAGE = "xsc-busybox:test"
APPLETS = ("sh", "sleep", "top", "echo", "cat", "yes", "head", "printf", "seq", "true",
           "false", "ls")

Engine = collections.namedtuple("Engine", "socket base docker")


def _missing_prerequisite():
    if os.geteuid() != 0:
        return "needs root to run a Docker Engine"
    for path in (DOCKERD, BUSYBOX):
        if not os.path.exists(path):
            return "missing " + path
    if shutil.which("docker") is None:
        return "missing the docker CLI"
    return None


def _ping(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(2)
        sock.connect(path)
        sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
        return b" 200 " in sock.recv(1024)
    except OSError:
        return False
    finally:
        sock.close()


def _pids_under(base):
    """Processes whose command line mentions ``base`` (dockerd, containerd, shims)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                if base.encode() in f.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def _mounts_under(base):
    with open("/proc/mounts") as f:
        points = [line.split()[1] for line in f]
    return [p for p in points if p == base or p.startswith(base + "/")]


def _make_image_tar(folder):
    root = os.path.join(folder, "rootfs")
    os.makedirs(os.path.join(root, "bin"))
    shutil.copy(BUSYBOX, os.path.join(root, "bin", "busybox"))
    for applet in APPLETS:
        os.symlink("busybox", os.path.join(root, "bin", applet))
    tar_path = os.path.join(folder, "rootfs.tar")
    with tarfile.open(tar_path, "w") as tar:
        tar.add(os.path.join(root, "bin"), arcname="bin")
    return tar_path


@pytest.fixture(scope="session")
def engine():
    reason = _missing_prerequisite()
    if reason:
        pytest.skip(reason)
    base = tempfile.mkdtemp(prefix="xscd-", dir="/tmp")
    sock = os.path.join(base, "docker.sock")
    env = dict(os.environ, DOCKER_HOST="unix://" + sock,
               DOCKER_CONFIG=os.path.join(base, "cli"))
    log = open(os.path.join(base, "dockerd.log"), "wb")
    etc = os.path.join(base, "etc-docker")
    os.makedirs(etc)
    # own mount namespace with a private /etc/docker: dockerd writes its key.json there
    proc = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
         'mount --bind "$0" /etc/docker && exec "$@"', etc,
         DOCKERD, "--host", "unix://" + sock,
         "--data-root", os.path.join(base, "data"),
         "--exec-root", os.path.join(base, "exec"),
         "--pidfile", os.path.join(base, "dockerd.pid"),
         "--bridge=none", "--iptables=false", "--ip6tables=false",
         "--log-level=warn"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def docker(*args, **kwargs):
        """Run the docker CLI against this engine; its stdout as text."""
        res = subprocess.run(["docker"] + list(args), env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=kwargs.get("timeout", 60),
                             input=kwargs.get("input"))
        if kwargs.get("check", True) and res.returncode != 0:
            raise AssertionError("docker %s: %s" % (" ".join(args), res.stderr.decode()))
        return res.stdout.decode().strip()

    try:
        deadline = time.time() + 60
        while not _ping(sock):
            if proc.poll() is not None or time.time() > deadline:
                with open(os.path.join(base, "dockerd.log")) as f:
                    raise AssertionError("dockerd did not start:\n" + f.read()[-3000:])
            time.sleep(0.2)
        with open(_make_image_tar(base), "rb") as f:
            docker("import", "-", IMAGE, input=f.read())
        yield Engine(sock, base, docker)
    finally:
        try:
            ids = docker("ps", "-aq", check=False, timeout=30).split()
            if ids:
                docker("rm", "-f", *ids, check=False, timeout=60)
        except Exception:
            pass
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        for pid in _pids_under(base):       # containerd shims outliving dockerd
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for point in reversed(_mounts_under(base)):
            subprocess.call(["umount", "-l", point])
        shutil.rmtree(base, ignore_errors=True)
        assert not _pids_under(base), "processes left behind under " + base
