"""Propagation, plugin call latency and one VM with 2000 containers, on a lab pool
(one host, one VM: a network namespace with a real Docker Engine and a real sshd)."""
import concurrent.futures
import os
import time
import xml.dom.minidom

from bench import bursts
from bench.common import (Pool, ProcStat, create_container, docker_api, ensure_prop, lab_cmd,
                          log, median, percentile, precompile, sized, start_lab, stop_lab,
                          wait_vm_change)
from dom0_plugin import constants as C
from dom0_plugin import documents
from tests.monitor.helpers import ask_monitor, ps_entries, wait_for

NOOP_PLUGIN = """#!/usr/bin/env python3
import sys
sys.stdout.write("<?xml version='1.0'?>\\n<methodResponse><params><param><value><struct>"
                 "<member><name>Status</name><value><string>Success</string></value></member>"
                 "<member><name>Value</name><value><string>True</string></value></member>"
                 "</struct></value></param></params></methodResponse>\\n")
"""
# a container that stops at once on SIGTERM (busybox sleep as PID 1 would ignore it)
STOPPABLE = ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]


def _timed(fn, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000.0)
    return out


def propagation_delays(pool, sock, samples, spacing=1.2):
    """Pause/unpause the container "prop" (created if needed) ``samples`` times, each time
    measuring until docker_ps in VM.other_config shows it; the delays in seconds."""
    ref = pool.vm_ref("vm0")
    ensure_prop(pool, sock)
    delays = []
    for i in range(samples):
        time.sleep(spacing)     # the monitor writes a VM at most once a second
        verb, want = ("pause", C.STATUS_PAUSED) if i % 2 == 0 else ("unpause", C.STATUS_UP)
        docker_api(sock, "POST", "/v1.41/containers/prop/" + verb)
        changed = time.time()
        seen = wait_vm_change(pool, ref, lambda oc: (ps_entries(
            oc.get(C.KEY_DOCKER_PS)) or {}).get("prop") == want)
        delays.append(seen - changed)
    if samples % 2:
        docker_api(sock, "POST", "/v1.41/containers/prop/unpause")
    return delays


def propagation(pool, vm, sock, runs=sized(2, 1), samples=sized(20, 4)):
    """Container state change in the VM -> docker_ps in VM.other_config shows it."""
    per_run = []
    for run in range(runs):
        delays = propagation_delays(pool, sock, samples)
        per_run.append(delays)
        log("propagation run %d: p50 %.3f s p99 %.3f s" % (run + 1, percentile(delays, 50),
                                                            percentile(delays, 99)))
    every = [d for r in per_run for d in r]
    return {"runs": [{"p50": percentile(r, 50), "p99": percentile(r, 99)} for r in per_run],
            "p50": percentile(every, 50), "p99": percentile(every, 99), "n": len(every)}


def _stop_monitor(pool):
    from lab.state import Paths, Runtime
    from lab import proc
    rec = Runtime(Paths(pool.lab.state)).load()["pids"]["monitor-host0"]
    proc.stop(rec[0], rec[1])


def plugin_latency(pool, vm, sock, n=sized(20, 4)):
    lab = pool.lab
    host = lab.host("host0")
    with open(os.path.join(host["plugin_dir"], "xscbench-noop"), "w") as f:
        f.write(NOOP_PLUGIN)
    os.chmod(os.path.join(host["plugin_dir"], "xscbench-noop"), 0o755)
    create_container(sock, "lat", STOPPABLE)
    from lab import dom0
    host_ref = pool.host_ref("host0")
    x = pool.x

    def bare():
        dom0.run_in_host(host["ns_pid"], ["/usr/bin/python3", "-c", "pass"],
                         lab.info["dom0_python"])

    def noop():
        x.host.call_plugin(host_ref, "xscbench-noop", "noop", {})

    def get_top():
        assert x.host.call_plugin(host_ref, C.PLUGIN_NAME, "get_top",
                                  {"vmuuid": vm["uuid"], "object": "lat"}).startswith("True<")

    def stop():
        docker_api(sock, "POST", "/v1.41/containers/lat/start")
        t = time.perf_counter()
        x.host.call_plugin(host_ref, C.PLUGIN_NAME, "stop",
                           {"vmuuid": vm["uuid"], "container": "lat"})
        return (time.perf_counter() - t) * 1000.0

    def docker_top():
        docker_api(sock, "GET", "/v1.41/containers/lat/json")
        docker_api(sock, "GET", "/v1.41/containers/lat/top")

    def docker_stop():
        docker_api(sock, "POST", "/v1.41/containers/lat/start")
        t = time.perf_counter()
        docker_api(sock, "GET", "/v1.41/containers/lat/json")
        docker_api(sock, "POST", "/v1.41/containers/lat/stop?t=10")
        return (time.perf_counter() - t) * 1000.0

    for fn in (bare, noop, get_top):
        fn()                    # warm caches
    out = {"bare_python": median(_timed(bare, n)), "noop_plugin": median(_timed(noop, n)),
           "docker_top": median(_timed(docker_top, n)),
           "ours_get_top": median(_timed(get_top, n)),
           "docker_stop": median([docker_stop() for _ in range(n // 2)]),
           "ours_stop": median([stop() for _ in range(n // 2)])}
    docker_api(sock, "POST", "/v1.41/containers/lat/start")
    log("ours: get_top %.1f ms, stop %.1f ms" % (out["ours_get_top"], out["ours_stop"]))
    _stop_monitor(pool)         # no monitor: the plugin connects on its own every call
    try:
        get_top()
        out["direct_get_top"] = median(_timed(get_top, n // 2))
        out["direct_stop"] = median([stop() for _ in range(n // 4)])
    finally:
        lab_cmd("restart", "monitor", "--state", lab.state)
    log("direct: get_top %.1f ms, stop %.1f ms" % (out["direct_get_top"], out["direct_stop"]))
    return out


def big_vm(pool, vm, sock, count=sized(2000, 100)):
    """One VM with ``count`` containers: docker_ps valid and within budget; resync time."""
    ref = pool.vm_ref("vm0")
    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(8) as pool_:
        list(pool_.map(lambda i: create_container(sock, "big%04d" % i, ["sleep", "1"], start=False),
                       range(count)))
    log("created %d containers in %.0f s" % (count, time.time() - started))
    wait_vm_change(pool, ref, lambda oc: "big%04d" % (count - 1) in (oc.get(
        C.KEY_DOCKER_PS) or ""), timeout=120)
    restarted = time.time()
    lab_cmd("restart", "monitor", "--state", pool.lab.state)
    status = wait_for(lambda: [v for v in _followed(pool.lab)
                               if v["vm"] == vm["uuid"] and v["fresh"]], 120,
                      what="resync of the big VM")[0]
    fresh_after = time.time() - restarted
    doc = pool.other_config("vm0")[C.KEY_DOCKER_PS]
    dom = xml.dom.minidom.parseString(doc.encode("ascii"))
    shown = len(dom.getElementsByTagName("entry"))
    from lab.state import Paths, Runtime
    pid = Runtime(Paths(pool.lab.state)).load()["pids"]["monitor-host0"][0]
    rss = ProcStat(pid).rss_mb()
    # one change among 2000 containers
    delays = []
    for i in range(6):
        time.sleep(1.2)
        verb, want = ("pause", C.STATUS_PAUSED) if i % 2 == 0 else ("unpause", C.STATUS_UP)
        docker_api(sock, "POST", "/v1.41/containers/prop/" + verb)
        t = time.time()
        delays.append(wait_vm_change(pool, ref, lambda oc: (ps_entries(
            oc.get(C.KEY_DOCKER_PS)) or {}).get("prop") == want) - t)
    out = {"containers": count + 2, "shown": shown, "bytes": len(doc),
           "wire_bytes": documents.wire_size(doc), "budget": C.DOCUMENT_BUDGET_BYTES,
           "connect_s": status["timings"][0], "resync_s": status["timings"][1],
           "fresh_after_restart_s": fresh_after, "monitor_rss_mb": rss,
           "propagation_p50": percentile(delays, 50), "propagation_max": max(delays)}
    log("big VM: %r" % out)
    return out


def _followed(lab):
    try:
        return ask_monitor(lab, "host0")["vms"]
    except AssertionError:      # restarting: no socket yet
        return []


def run():
    lab = start_lab("--hosts", "1", "--vms", "1")
    try:
        precompile(lab)
        pool = Pool(lab)
        pool.enrol("vm0")
        vm = lab.vm("vm0")
        sock = vm["docker_socket"]
        wait_for(lambda: (pool.status("vm0") or None) and pool.status("vm0").state == "fresh",
                 30, what="vm0 followed")
        results = {"propagation": propagation(pool, vm, sock)}
        results["bursts"] = bursts.run(pool, sock, "ssh")
        results["latency"] = plugin_latency(pool, vm, sock)
        wait_for(lambda: [v for v in _followed(lab) if v["fresh"]], 30, what="monitor back")
        results["big_vm"] = big_vm(pool, vm, sock)
        return results
    finally:
        stop_lab(lab)


if __name__ == "__main__":
    import json
    print(json.dumps(run(), indent=1))
