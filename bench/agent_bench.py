"""Agent mode on a lab pool (2 hosts, 2 VMs, the guest agent in each VM): propagation
through the agent, plugin call latency in agent mode against SSH mode on the same VM, and
the agent's own CPU and memory, idle and under load. About 3 minutes."""
import threading
import time

from bench.common import (Pool, create_container, sized, ProcStat, docker_api, log, median, percentile, precompile,
                          start_lab, stop_lab, wait_vm_change)
from bench.lab_bench import STOPPABLE, _timed, propagation_delays
from bench import bursts
from dom0_plugin import constants as C
from tests.monitor.helpers import ask_monitor, ps_entries, wait_for

PROPAGATION_SAMPLES = sized(50, 4)
LATENCY_CALLS = sized(20, 4)
IDLE_SECONDS = sized(20.0, 3.0)
LOAD_SECONDS = sized(20.0, 3.0)
LOAD_TOGGLES_PER_SECOND = 2.0
LOAD_BURST = sized(50, 5)                # containers created (not started) at the start of the load


def _followed(lab, host, uuid, mode):
    """The monitor of ``host`` follows the VM, fresh, through ``mode``."""
    try:
        vms = ask_monitor(lab, host)["vms"]
    except AssertionError:      # restarting: no socket yet
        return None
    return [v for v in vms if v["vm"] == uuid and v["fresh"]
            and (v["address"] == "xenstore") == (mode == C.MODE_AGENT)]


def _register(pool, host, vm, mode):
    """Register the VM in ``mode`` and wait until the monitor follows it that way. The
    monitor keeps a VM's follower when only its transport changes, so the VM is
    deregistered first (and is seen unfollowed) when switching."""
    uuid = vm["uuid"]
    if ask_monitor(pool.lab, host)["vms"]:
        pool.plugin("deregister", host=host, vmuuid=uuid)
        wait_for(lambda: not [v for v in ask_monitor(pool.lab, host)["vms"]
                              if v["vm"] == uuid], 30, what="vm0 unfollowed")
    if mode == C.MODE_SSH:
        pool.plugin("prepare", host=host, vmuuid=uuid, username=vm["ssh"]["user"],
                    password=vm["ssh"]["password"], fingerprint=vm["ssh"]["fingerprint"])
    wait_for(lambda: _try(lambda: pool.plugin("register", host=host, vmuuid=uuid,
                                              mode=mode)), 30, what="register " + mode)
    wait_for(lambda: _followed(pool.lab, host, uuid, mode), 30, what="vm0 followed (%s)" % mode)


def _try(fn):
    try:
        return fn() or True
    except Exception:
        return False


def latency(pool, host, vm, sock, n=LATENCY_CALLS):
    """Medians of ``n`` get_top, stop and start calls through host.call_plugin."""
    host_ref = pool.host_ref(host)
    x = pool.x

    def call(fn, **args):
        t = time.perf_counter()
        out = x.host.call_plugin(host_ref, C.PLUGIN_NAME, fn, dict(vmuuid=vm["uuid"], **args))
        return (time.perf_counter() - t) * 1000.0, out

    def get_top():
        ms, out = call("get_top", object="lat")
        assert out.startswith("True<"), out[:200]
        return ms

    def lifecycle(fn):
        ms, out = call(fn, container="lat")
        assert out == "True", (fn, out[:200])
        return ms

    get_top()                   # warm caches
    tops = [get_top() for _ in range(n)]
    stops, starts = [], []
    for _ in range(n):          # the container is running: stop it, start it again
        stops.append(lifecycle("stop"))
        starts.append(lifecycle("start"))
    return {"get_top": median(tops), "stop": median(stops), "start": median(starts), "n": n}


def docker_own(sock, n=LATENCY_CALLS):
    """The same requests straight to the engine's socket: what no transport can save."""
    def top():
        docker_api(sock, "GET", "/v1.41/containers/lat/json")
        docker_api(sock, "GET", "/v1.41/containers/lat/top")

    def verb(name):
        def fn():
            docker_api(sock, "GET", "/v1.41/containers/lat/json")
            docker_api(sock, "POST", "/v1.41/containers/lat/%s?t=10" % name
                       if name == "stop" else "/v1.41/containers/lat/" + name)
        return fn
    stops, starts = [], []
    for _ in range(n // 2):
        stops += _timed(verb("stop"), 1)
        starts += _timed(verb("start"), 1)
    return {"get_top": median(_timed(top, n)), "stop": median(stops), "start": median(starts)}


def propagation(pool, sock, samples=PROPAGATION_SAMPLES):
    """Container state change in the VM -> docker_ps in VM.other_config shows it."""
    delays = propagation_delays(pool, sock, samples, spacing=1.1)
    out = {"p50": percentile(delays, 50), "p99": percentile(delays, 99), "max": max(delays),
           "n": len(delays)}
    log("agent propagation: p50 %.3f s p99 %.3f s (n %d)" % (out["p50"], out["p99"], out["n"]))
    return out


def _sampled(stat, seconds):
    """CPU share of one core over ``seconds`` and the RSS (mean, max) sampled every 0.5 s."""
    rss = []
    start_cpu, start = stat.cpu(), time.time()
    while time.time() - start < seconds:
        rss.append(stat.rss_mb())
        time.sleep(0.5)
    cpu = (stat.cpu() - start_cpu) / (time.time() - start)
    return cpu, sum(rss) / len(rss), max(rss)


def agent_resources(pool, sock):
    """The agent of vm0 idle, then under load: the "prop" container paused and unpaused
    LOAD_TOGGLES_PER_SECOND times a second, plus LOAD_BURST containers created at once."""
    from lab.state import Paths, Runtime
    pid = Runtime(Paths(pool.lab.state)).load()["pids"]["agent-vm0"][0]
    stat = ProcStat(pid)
    time.sleep(2.0)             # let the last writes settle
    idle_cpu, idle_rss, idle_rss_max = _sampled(stat, IDLE_SECONDS)
    log("agent idle: %.2f %% of a core, RSS %.1f MB" % (100 * idle_cpu, idle_rss_max))
    stop = threading.Event()
    toggles = [0]

    def toggle():
        period = 1.0 / LOAD_TOGGLES_PER_SECOND
        nxt = time.time()
        while not stop.is_set():
            verb = "pause" if toggles[0] % 2 == 0 else "unpause"
            docker_api(sock, "POST", "/v1.41/containers/prop/" + verb)
            toggles[0] += 1
            nxt += period
            stop.wait(max(0.0, nxt - time.time()))

    def burst():
        for i in range(LOAD_BURST):
            if stop.is_set():
                break
            create_container(sock, "burst%03d" % i, ["true"], start=False)

    threads = [threading.Thread(target=toggle), threading.Thread(target=burst)]
    for t in threads:
        t.start()
    try:
        load_cpu, load_rss, load_rss_max = _sampled(stat, LOAD_SECONDS)
    finally:
        stop.set()
        for t in threads:
            t.join()
    if toggles[0] % 2:
        docker_api(sock, "POST", "/v1.41/containers/prop/unpause")
    ref = pool.vm_ref("vm0")
    wait_vm_change(pool, ref, lambda oc: "burst%03d" % (LOAD_BURST - 1) in (
        ps_entries(oc.get(C.KEY_DOCKER_PS)) or {}), timeout=30)
    log("agent under load: %.2f %% of a core, RSS %.1f MB (%d toggles)"
        % (100 * load_cpu, load_rss_max, toggles[0]))
    return {"pid": pid, "idle_cpu": idle_cpu, "idle_rss_mb": idle_rss_max,
            "load_cpu": load_cpu, "load_rss_mb": load_rss_max, "load_rss_mean_mb": load_rss,
            "load_toggles": toggles[0], "load_burst": LOAD_BURST,
            "idle_s": IDLE_SECONDS, "load_s": LOAD_SECONDS,
            "threads": stat.threads()}


def run():
    started = time.time()
    lab = None
    try:
        lab = start_lab("--hosts", "2", "--vms", "2", "--agent")
        precompile(lab)
        pool = Pool(lab)
        vm = lab.vm("vm0")
        sock = vm["docker_socket"]
        host = pool.resident_host("vm0")
        create_container(sock, "lat", STOPPABLE)
        results = {}
        _register(pool, host, vm, C.MODE_SSH)
        results["ssh"] = latency(pool, host, vm, sock)
        log("ssh mode: %r" % results["ssh"])
        _register(pool, host, vm, C.MODE_AGENT)
        results["agent"] = latency(pool, host, vm, sock)
        log("agent mode: %r" % results["agent"])
        results["docker"] = docker_own(sock)
        results["propagation"] = propagation(pool, sock)
        results["bursts"] = bursts.run(pool, sock, "agent")
        results["resources"] = agent_resources(pool, sock)
        results["seconds"] = time.time() - started
        results["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        return results
    finally:
        if lab is not None:
            stop_lab(lab)


if __name__ == "__main__":
    import json
    print(json.dumps(run(), indent=1))
