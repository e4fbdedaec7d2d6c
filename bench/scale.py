"""Scale: the monitor following 100 then 500 VMs (bench/fakevms.py says how they are
made): time to follow them all, CPU and RSS idle and under a steady event load, XAPI
writes per VM per second."""
import threading
import time

from bench.common import DOM0_PYTHON, ProcStat, docker_api, log, sized
from bench.fakevms import FakeVms

# request channels idle this long are closed (the product's default is 300 s: shorter
# here so that "idle" is reached within the benchmark's time)
SETTINGS = {"request_idle": 10}
IDLE_SECONDS = sized(20.0, 3.0)
LOAD_SECONDS = sized(20.0, 3.0)
LOAD_CHANGES_PER_SECOND = 2.0


def _wait_all_fresh(env, count, timeout):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = env.ask()["monitor"]
        except Exception:
            last = None
        if last and last["fresh"] >= count:
            return last
        time.sleep(0.5)
    raise RuntimeError("only %s of %d VMs fresh after %ss" % (
        last and last["fresh"], count, timeout))


def _load(env, stop):
    """Pause and unpause one container of the shared engine: every VM sees each change."""
    sock = env.docker_socket
    i = 0
    while not stop.is_set():
        docker_api(sock, "POST", "/v1.41/containers/tick/%s" % ("pause" if i % 2 == 0
                                                                 else "unpause"))
        i += 1
        stop.wait(1.0 / LOAD_CHANGES_PER_SECOND)
    if i % 2:
        docker_api(sock, "POST", "/v1.41/containers/tick/unpause")
    return i


def measure(env, monitor, count, started):
    status = _wait_all_fresh(env, count, timeout=60 + count * 0.3)
    follow_s = time.time() - started
    log("%d VMs fresh in %.1f s" % (count, follow_s))
    time.sleep(SETTINGS["request_idle"] + 3)       # request channels closed: idle
    idle_cpu = monitor.cpu_share(IDLE_SECONDS)
    idle_rss = monitor.rss_mb()
    threads = monitor.threads()
    before = env.ask()
    stop = threading.Event()
    changes = []
    loader = threading.Thread(target=lambda: changes.append(_load(env, stop)), daemon=True)
    t0 = time.time()
    loader.start()
    load_cpu = monitor.cpu_share(LOAD_SECONDS)
    stop.set()
    loader.join()
    duration = time.time() - t0
    time.sleep(2)
    duration += 2.0             # writes of the last changes land in these 2 s
    after = env.ask()
    load_rss = monitor.rss_mb()
    w0, w1 = before["monitor"]["writes"], after["monitor"]["writes"]
    per_vm = [after["writes_per_vm"].get(u, 0) - before["writes_per_vm"].get(u, 0)
              for u in env.vm_uuids[:count]]
    out = {"vms": count, "follow_s": follow_s, "idle_cpu": idle_cpu, "idle_rss_mb": idle_rss,
           "threads": threads, "load_cpu": load_cpu, "load_rss_mb": load_rss,
           "changes_per_s": changes[0] / duration if changes else 0,
           "writes_per_vm_s": sum(per_vm) / float(count) / duration,
           "max_writes_one_vm_s": max(per_vm) / duration,
           "xapi_calls_s": (w1["calls"] - w0["calls"]) / duration,
           "fresh_after_load": after["monitor"]["fresh"]}
    log("scale %d: %r" % (count, out))
    return out, status


def run(counts=None):
    counts = counts or sized((100, 500), (20,))
    env = FakeVms(max(counts))
    results = []
    try:
        env.up()
        env.start_xapi()
        docker_api(env.docker_socket, "POST", "/v1.41/containers/create?name=tick",
                   {"Image": "xsclab/busybox:1", "Cmd": ["sleep", "100000"]})
        docker_api(env.docker_socket, "POST", "/v1.41/containers/tick/start")
        pid = env.start_monitor(DOM0_PYTHON, SETTINGS)
        monitor = ProcStat(pid)
        started = 0
        for count in counts:
            began = time.time()
            env.start_vms(started, count)     # the monitor follows them as they start
            started = count
            results.append(measure(env, monitor, count, began)[0])
        from bench import transport_choice
        transport = transport_choice.run(env, DOM0_PYTHON)
    finally:
        env.close()
    return {"scale": results, "transport": transport}


if __name__ == "__main__":
    import json
    import sys
    counts = tuple(int(a) for a in sys.argv[1:]) or (100, 500)
    print(json.dumps(run(counts), indent=1))
