"""What the benchmarks share: the lab, timing, process accounting, result tables."""
import json
import os
import platform
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from dom0_plugin import constants as C  # noqa: E402
from lab import dom0_python  # noqa: E402
from tests.labfixture import Lab, lab_cmd  # noqa: E402
from tests.monitor.helpers import Pool, ps_entries  # noqa: E402,F401  (Pool: re-exported)

DOM0_PYTHON = dom0_python.required()
# The short form (`python -m bench --short`, run by CI): every benchmark, few samples,
# figures printed, nothing judged and docs/benchmarks.md left alone.
SHORT = os.environ.get("XSCNG_BENCH_SHORT") == "1"


def sized(full, short):
    """``full`` for the real run, ``short`` for the short form."""
    return short if SHORT else full


def log(text):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), text))
    sys.stderr.flush()


def start_lab(*args):
    import tempfile
    state = tempfile.mkdtemp(prefix="xscng-bench-", dir="/tmp")
    os.rmdir(state)
    try:
        lab_cmd("up", "--state", state, *args)
    except BaseException:       # a lab half up: take down what did start
        lab_cmd("down", "--state", state, check=False)
        raise
    return Lab(state)


def stop_lab(lab):
    lab_cmd("down", "--state", lab.state, check=False)


def precompile(lab=None):
    """Byte-compile the dom0 code for Python 3.6, as the installed RPM ships it (a plugin
    start otherwise pays the compilation of every module on every call)."""
    dirs = [os.path.join(REPO, "dom0_plugin")]
    if lab is not None:
        dirs += [os.path.join(lab.state, "dom0", d) for d in ("site", "vendor")]
    python = lab.info["dom0_python"] if lab is not None else DOM0_PYTHON
    subprocess.run([python, "-m", "compileall", "-q"] + dirs, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values):
    return statistics.median(values) if values else float("nan")


class ProcStat(object):
    """CPU time and memory of a process (and optionally its children)."""

    def __init__(self, pid):
        self.pid = pid
        self.tick = os.sysconf("SC_CLK_TCK")

    def cpu(self):
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / float(self.tick)

    def rss_mb(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        return 0.0

    def threads(self):
        return len(os.listdir("/proc/%d/task" % self.pid))

    def cpu_share(self, seconds):
        """Share of one core used over ``seconds`` (0.05 = 5 %)."""
        start_cpu, start = self.cpu(), time.time()
        time.sleep(seconds)
        return (self.cpu() - start_cpu) / (time.time() - start)


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / float(1 << 30)
    return "%s, %d cores, %.0f GiB RAM, %s %s" % (cpu, os.cpu_count(), mem,
                                                 platform.system(), platform.release())


def wait_vm_change(pool, ref, predicate, timeout=30.0):
    """Block on event.from until ``predicate(other_config)`` holds; the time it did."""
    x = pool.x
    token = getattr(x.event, "from")(["vm/" + ref], "", 0.0)["token"]
    deadline = time.time() + timeout
    if predicate(x.VM.get_other_config(ref)):
        return time.time()
    while time.time() < deadline:
        res = getattr(x.event, "from")(["vm/" + ref], token, 5.0)
        token = res["token"]
        for ev in res["events"]:
            if ev.get("ref") == ref and ev.get("snapshot") and predicate(
                    ev["snapshot"].get("other_config", {})):
                return time.time()
    raise RuntimeError("no change within %ss" % timeout)


def docker_api(socket_path, method, path, body=None, timeout=60):
    """One request to a Docker Engine's Unix socket (the bench's own, not the product's)."""
    import http.client
    import socket

    class Conn(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(socket_path)
    conn = Conn("docker")
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data,
                 headers={"Content-Type": "application/json"} if data else {})
    res = conn.getresponse()
    out = res.read()
    conn.close()
    if res.status >= 400:
        raise RuntimeError("%s %s: %d %s" % (method, path, res.status, out[:200]))
    return json.loads(out) if out and res.getheader("Content-Type", "").startswith(
        "application/json") else out


def create_container(sock, name, cmd, start=True):
    docker_api(sock, "POST", "/v1.41/containers/create?name=" + name,
               {"Image": "xsclab/busybox:1", "Cmd": cmd})
    if start:
        docker_api(sock, "POST", "/v1.41/containers/%s/start" % name)


def ensure_prop(pool, sock):
    """The container "prop", running and shown in docker_ps (created on first use)."""
    try:
        docker_api(sock, "GET", "/v1.41/containers/prop/json")
    except RuntimeError as error:
        if ": 404 " not in str(error):
            raise
        create_container(sock, "prop", ["sleep", "100000"])
    wait_vm_change(pool, pool.vm_ref("vm0"), lambda oc: (ps_entries(
        oc.get(C.KEY_DOCKER_PS)) or {}).get("prop") == C.STATUS_UP)
