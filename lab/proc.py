"""Starting and stopping the lab's own processes, by pid, never by name."""
import os
import signal
import socket
import subprocess
import time


def spawn(argv, log_path, env=None, cwd="/"):
    """Start a detached process (own session) logging to log_path; return its pid."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                env=env, cwd=cwd, start_new_session=True)
    return proc.pid


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def alive(pid, marker=None):
    """True when pid runs and (if given) its command line contains marker.

    The marker guards against pid reuse: we only ever signal what we started. A process
    caught between fork and exec has an empty command line: it counts as alive.
    """
    try:
        with open("/proc/%d/stat" % pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                _reap(pid)
                return False
    except (OSError, IndexError):
        return False
    line = cmdline(pid)
    if line is None:
        return False
    return marker is None or not line.strip() or marker in line


def _reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop(pid, marker=None, timeout=10.0, sig=signal.SIGTERM):
    """Signal pid (if it is still ours) and wait for it to go; SIGKILL after timeout."""
    if not pid or not alive(pid, marker):
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    for _ in range(100):
        _reap(pid)
        if not alive(pid):
            return
        time.sleep(0.05)


def _ancestors():
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            with open("/proc/%d/stat" % pid) as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def pids_with(marker):
    """Pids of processes whose command line contains marker (our unique run-dir path),
    never this process or its ancestors (whose command line may name the lab too)."""
    found = []
    mine = _ancestors()
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in mine:
            line = cmdline(int(name))
            if line and marker in line:
                found.append(int(name))
    return found


def wait_for(check, timeout, what):
    """Poll check() until it returns a true value; raise a clear error on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(0.05)


def unix_socket_ready(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def tcp_ready(host, port):
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def run(argv, **kw):
    """Run a command, raising an error that shows its output when it fails."""
    res = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)
    if res.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(argv), res.returncode,
                                                   res.stdout.decode(errors="replace").strip()))
    return res.stdout.decode(errors="replace")
