"""A private, real Docker Engine (Debian's docker.io) for tests that need one outside the lab.

It listens on its own Unix socket with its own data, exec and pid paths, makes no bridge and
touches no iptables rules (containers run with ``--network none``), and runs in its own mount
namespace with a private /etc/docker, where dockerd writes its identity (key.json): nothing of
the machine changes. The image is a ``docker import`` of Debian's static busybox. stop() and
start() may be called again (an engine restart); destroy() stops it by pid, kills what is left
under its folder, unmounts and removes it.
"""
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time

from lab.vm import private_etc_docker

DOCKERD = "/usr/sbin/dockerd"
BUSYBOX = "/bin/busybox"
IMAGE = "xsc-busybox:test"
APPLETS = ("sh", "sleep", "top", "echo", "cat", "yes", "head", "printf", "seq", "true",
           "false", "ls")


def missing_prerequisite():
    """Why no engine can run here (None when it can)."""
    if os.geteuid() != 0:
        return "needs root to run a Docker Engine"
    for path in (DOCKERD, BUSYBOX):
        if not os.path.exists(path):
            return "missing " + path
    if shutil.which("docker") is None:
        return "missing the docker CLI"
    return None


def ping(path):
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


def pids_mentioning(text):
    """Processes whose command line mentions text (never this one)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    if text.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


# The engines the engine-backed tests run against: the machine's (Debian 12's docker.io
# 20.10, API 1.41) and the newest Debian's (unstable: docker.io 28.x, from a debootstrapped
# root with its own containerd and runc: lab/debian_engine.py).
ENGINES = ("machine", "sid")


class Engine(object):
    def __init__(self, prefix="xsce-", suite="machine"):
        self.suite = suite
        self.base = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
        self.socket = os.path.join(self.base, "docker.sock")
        self.url = "unix://" + self.socket
        self.proc = None
        self.log = None
        self.imported = False

    def _argv(self):
        data, exec_root = os.path.join(self.base, "data"), os.path.join(self.base, "exec")
        pidfile, etc = os.path.join(self.base, "dockerd.pid"), os.path.join(self.base,
                                                                            "etc-docker")
        if self.suite != "machine":
            from lab import debian_engine
            return debian_engine.engine_argv(debian_engine.prepare(self.suite), self.socket,
                                             data, exec_root, pidfile, etc)
        return private_etc_docker(etc, [
            DOCKERD, "--host", self.url, "--data-root", data, "--exec-root", exec_root,
            "--pidfile", pidfile, "--bridge=none", "--iptables=false", "--ip6tables=false",
            "--log-level=warn"])

    def start(self):
        self.log = open(os.path.join(self.base, "dockerd.log"), "ab")
        self.proc = subprocess.Popen(self._argv(), stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while not ping(self.socket):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("dockerd did not start:\n" + self.log_text()[-3000:])
            time.sleep(0.2)
        if not self.imported:
            self._import_image()
            self.imported = True
        return self

    def _import_image(self):
        root = os.path.join(self.base, "rootfs")
        os.makedirs(os.path.join(root, "bin"))
        shutil.copy(BUSYBOX, os.path.join(root, "bin", "busybox"))
        for applet in APPLETS:
            os.symlink("busybox", os.path.join(root, "bin", applet))
        tar_path = os.path.join(self.base, "rootfs.tar")
        with tarfile.open(tar_path, "w") as tar:
            tar.add(os.path.join(root, "bin"), arcname="bin")
        with open(tar_path, "rb") as f:
            self.docker("import", "-", IMAGE, input=f.read())

    def log_text(self):
        try:
            with open(os.path.join(self.base, "dockerd.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def docker(self, *args, **kwargs):
        """Run the docker CLI against this engine; its stdout as text."""
        env = dict(os.environ, DOCKER_HOST=self.url,
                   DOCKER_CONFIG=os.path.join(self.base, "cli"))
        res = subprocess.run(["docker"] + list(args), env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=kwargs.get("timeout", 60),
                             input=kwargs.get("input"))
        if kwargs.get("check", True) and res.returncode != 0:
            raise AssertionError("docker %s: %s" % (" ".join(args), res.stderr.decode()))
        return res.stdout.decode().strip()

    def run(self, name, *command, **kwargs):
        """Start a detached container on no network; its full id."""
        extra = list(kwargs.get("options", ()))
        return self.docker("run", "-d", "--network", "none", "--name", name, *extra,
                           IMAGE, *(command or ("sleep", "3600")))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        if self.log is not None:
            self.log.close()
            self.log = None
        # containerd and its shims (their command lines name the exec root)
        for pid in pids_mentioning(os.path.join(self.base, "exec")):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def destroy(self):
        if self.proc is not None and self.proc.poll() is None:
            ids = self.docker("ps", "-aq", check=False, timeout=30).split()
            if ids:
                self.docker("rm", "-f", *ids, check=False, timeout=60)
        self.stop()
        with open("/proc/mounts") as f:
            points = [line.split()[1] for line in f]
        for point in reversed([p for p in points if p.startswith(self.base + "/")]):
            subprocess.call(["umount", "-l", point])
        shutil.rmtree(self.base, ignore_errors=True)
        assert not pids_mentioning(self.base), "processes left behind under " + self.base
