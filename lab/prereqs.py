"""What the lab needs from the machine, and which Debian package provides it."""
import os
import shutil
import sys

from lab import dom0_python as dom0_python_mod

# command -> Debian package
COMMANDS = {
    "dockerd": "docker.io",
    "docker": "docker.io",
    "sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
    "ip": "iproute2",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "xenstore-write": "xenstore-utils",
    "useradd": "passwd",
    "chpasswd": "passwd",
    "mount": "mount",
}
BUSYBOX = "/bin/busybox"


class MissingPrerequisite(RuntimeError):
    pass


def check():
    """Raise MissingPrerequisite naming every missing Debian package."""
    if os.geteuid() != 0:
        raise MissingPrerequisite("the lab needs root (namespaces, mounts, users): run it as root")
    missing = sorted({pkg for cmd, pkg in COMMANDS.items() if not shutil.which(cmd)})
    if not _static_busybox():
        missing.append("busybox-static")
    if missing:
        raise MissingPrerequisite(
            "missing Debian package(s): %s. Install them with: apt-get install -y %s"
            % (", ".join(missing), " ".join(missing)))


def _static_busybox():
    if not os.path.exists(BUSYBOX):
        return False
    with open(BUSYBOX, "rb") as f:
        head = f.read(4096)
    # a dynamic binary carries an interpreter path; the static one does not
    return b"ld-linux" not in head


def dom0_python():
    """The interpreter that plays dom0's /usr/bin/python3: Python 3.6 (lab/dom0_python.py);
    without one, this Python with a warning (never under CI, where that hides bugs)."""
    path = dom0_python_mod.find()
    if path:
        return path
    if os.environ.get("CI") == "true":
        raise MissingPrerequisite(dom0_python_mod.why_missing())
    sys.stderr.write("warning: %s; the lab's dom0 runs %s instead\n"
                     % (dom0_python_mod.why_missing(), sys.executable))
    return sys.executable
