"""Bursts of human actions, and sustained churn, as XAPI sees them (both modes).

- **Back-to-back**: the container "prop" paused, and unpaused as soon as docker_ps shows it
  paused (a person clicking Stop, then Start): the delay until docker_ps shows each of
  the two changes. A rest between pairs lets the per-VM write budget refill.
- **Sustained**: "prop" paused and unpaused every 0.1 s for a while: the docker_ps writes
  XAPI receives for the VM, per second (each write is one event on the VM), once the
  burst allowance is spent.
"""
import time

from bench.common import docker_api, ensure_prop, log, percentile, sized, wait_vm_change
from dom0_plugin import constants as C
from tests.monitor.helpers import ps_entries

REST = 4.0


def _shown(want):
    return lambda oc: (ps_entries(oc.get(C.KEY_DOCKER_PS)) or {}).get("prop") == want


def back_to_back(pool, sock, pairs):
    ref = pool.vm_ref("vm0")
    ensure_prop(pool, sock)
    first, second = [], []
    for _ in range(pairs):
        time.sleep(REST)
        docker_api(sock, "POST", "/v1.41/containers/prop/pause")
        t = time.time()
        first.append(wait_vm_change(pool, ref, _shown(C.STATUS_PAUSED)) - t)
        docker_api(sock, "POST", "/v1.41/containers/prop/unpause")
        t = time.time()
        second.append(wait_vm_change(pool, ref, _shown(C.STATUS_UP)) - t)
    return {"first_p50": percentile(first, 50), "first_p99": percentile(first, 99),
            "second_p50": percentile(second, 50), "second_p99": percentile(second, 99),
            "n": pairs}


def sustained(pool, sock, seconds, warmup=3.0):
    """docker_ps writes per second while "prop" changes ten times a second, counted once
    the burst allowance is spent (after ``warmup`` seconds of the same churn)."""
    x = pool.x
    ref = pool.vm_ref("vm0")
    ensure_prop(pool, sock)
    time.sleep(REST)
    token = getattr(x.event, "from")(["vm/" + ref], "", 0.0)["token"]
    last_doc, writes = None, 0
    began = time.time()
    start = began + warmup
    paused = False
    while time.time() - start < seconds:
        if time.time() < start:
            writes = 0
        docker_api(sock, "POST", "/v1.41/containers/prop/" + ("unpause" if paused else "pause"))
        paused = not paused
        res = getattr(x.event, "from")(["vm/" + ref], token, 0.1)
        token = res["token"]
        for ev in res["events"]:
            doc = (ev.get("snapshot") or {}).get("other_config", {}).get(C.KEY_DOCKER_PS)
            if ev.get("ref") == ref and doc is not None and doc != last_doc:
                writes, last_doc = writes + 1, doc
    elapsed = time.time() - start
    if paused:
        docker_api(sock, "POST", "/v1.41/containers/prop/unpause")
    return {"writes_per_second": writes / elapsed, "seconds": elapsed}


def run(pool, sock, mode, pairs=sized(20, 3), seconds=sized(20.0, 4.0)):
    out = {"back_to_back": back_to_back(pool, sock, pairs),
           "sustained": sustained(pool, sock, seconds)}
    b = out["back_to_back"]
    log("%s bursts: second change p50 %.3f s p99 %.3f s; sustained %.2f writes/s"
        % (mode, b["second_p50"], b["second_p99"], out["sustained"]["writes_per_second"]))
    return out
