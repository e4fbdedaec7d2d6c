"""Why one asyncio loop (asyncssh): 100 idle SSH connections, each streaming Docker events,
held by asyncssh (one thread), paramiko (a thread per connection: its Transport) and the
OpenSSH client (a process per connection), all under dom0's Python 3.6."""
import os
import subprocess
import time

from bench.common import REPO, log, sized
from bench.fakevms import address

COUNT = sized(100, 10)   # connections; the short form starts 20 VMs
SETTLE = sized(5.0, 1.0)
MEASURE = sized(15.0, 2.0)


def _pss_kb(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu(pids):
    total = 0.0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


def _threads(pids):
    return sum(len(os.listdir("/proc/%d/task" % p)) for p in pids if os.path.isdir(
        "/proc/%d" % p))


def _measure(name, pids):
    time.sleep(SETTLE)
    c0, t0 = _cpu(pids), time.time()
    time.sleep(MEASURE)
    cpu = (_cpu(pids) - c0) / (time.time() - t0)
    out = {"client": name, "connections": COUNT, "processes": len(pids),
           "threads": _threads(pids), "pss_mb": sum(_pss_kb(p) for p in pids) / 1024.0,
           "idle_cpu": cpu}
    log("transport %s: %r" % (name, out))
    return out


def _python_client(env, python, mode):
    vendor = os.path.join(env.state, "vendor")
    p = subprocess.Popen([python, "-W", "ignore", os.path.join(REPO, "bench",
                                                               "transport_clients.py"),
                          mode, env.user, env.key_path] + [address(i) for i in range(COUNT)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         env={"PYTHONPATH": vendor, "PATH": "/usr/bin:/bin"})
    try:
        line = p.stdout.readline()
        if not line.startswith(b"ready"):
            raise RuntimeError("%s client failed" % mode)
        return _measure(mode, [p.pid])
    finally:
        p.kill()
        p.wait()


def _openssh(env):
    procs = []
    try:
        for i in range(COUNT):
            p = subprocess.Popen(["ssh", "-i", env.key_path, "-o", "BatchMode=yes", "-o",
                                  "StrictHostKeyChecking=no", "-o",
                                  "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                                  "%s@%s" % (env.user, address(i)),
                                  "docker system dial-stdio"],
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            p.stdin.write(b"GET /v1.41/events HTTP/1.1\r\nHost: docker\r\n\r\n")
            p.stdin.flush()
            procs.append(p)
        time.sleep(3)
        return _measure("openssh", [p.pid for p in procs])
    finally:
        for p in procs:
            p.kill()
            p.wait()


def run(env, python):
    """Needs a FakeVms env with at least COUNT addresses; the monitor should be stopped."""
    from lab import proc
    if "monitor" in env.pids:
        proc.stop(env.pids.pop("monitor"), timeout=10)
    return [_python_client(env, python, "asyncssh"), _python_client(env, python, "paramiko"),
            _openssh(env)]
