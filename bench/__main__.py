"""`python -m bench`: run every benchmark, print the results, write docs/benchmarks.md.

`python -m bench --agent-only` runs only the agent-mode part (about 2 minutes), merges it
into build/benchmarks.json and writes the document again; `--render` only writes it.
`XSCNG_BENCH_SHORT=1 python -m bench --short` (`make bench-short`, run by CI) runs every
benchmark with few samples and prints the figures, so that the command keeps working; it
writes build/benchmarks-short.json, never docs/benchmarks.md.

About 8 minutes on the project's 2-core machines. Needs root and the lab's prerequisites
(tools/setup.sh), like the lab itself.
"""
import datetime
import json
import os
import sys
import time

from bench import agent_bench, lab_bench, scale
from bench.common import REPO, SHORT, log, machine

DOC = os.path.join(REPO, "docs", "benchmarks.md")

INTRO = """# Benchmarks

Written by `python -m bench` (`make bench`); do not edit by hand. {date}, on {machine}.
Total run time {minutes:.1f} min.

All numbers come from the real parts: the product's dom0 code under dom0's Python 3.6
(byte-compiled, as the RPM installs it), the lab's XAPI simulator running the plugin as
xapi does (`host.call_plugin`, a new process per call), real OpenSSH servers and real
Docker Engines (20.10) in network namespaces.
"""

DESIGN = """## Why one asyncio loop with asyncssh

The monitor holds one SSH connection per followed VM. The choices, measured with 100 idle
connections each streaming Docker events over `docker system dial-stdio`, under dom0's
Python 3.6 (`bench/transport_choice.py`):

{transport}

- **paramiko** runs a thread per connection (its `Transport`), each waking about ten times
  a second to poll its socket: idle CPU grows with the number of VMs (x5 at 500 VMs) and
  so do threads (500 stacks), for nothing.
- **OpenSSH client processes** cost no CPU when idle but a process per channel: about
  1.4 MB of dom0 memory each, x2 or x3 per VM once the request channel is counted (the
  event stream occupies its HTTP connection), and a process to start per reconnection.
- **asyncssh** (pure Python, cp36-compatible, pinned in pack/dom0-requirements.txt: 2.21.1
  with typing_extensions 4.1.1) keeps every connection on one event loop: no thread per
  VM, no per-VM process in dom0, zero idle CPU; in-memory keys (the pool key stays in its
  XAPI secret), per-VM host-key pinning through a callback. Dead peers are noticed by the
  kernel (TCP keepalive and TCP_USER_TIMEOUT on each socket), not by Python timers.

The monitor's threads are a fixed handful whatever the number of VMs: the loop, one
`event.from` watcher, `writers` (3) XAPI writers, and `workers` (6) threads that run
docker_api.DockerClient requests (the same client the plugin uses) over the loop's
channels. The Docker event streams themselves are read on the loop.
"""

NOTES = """## How it was measured

- **Propagation**: a container paused or unpaused through the VM's engine socket, until
  `docker_ps` in `VM.other_config` shows the new status (watched with `event.from`), one
  change every 1.2 s (the monitor writes a VM at most once a second), {prop_n} changes in
  {prop_runs} runs. Per run: {prop_runs_text}.
- **Plugin calls** go through `host.call_plugin` to the host the VM runs on; medians of 20
  (`stop`: 10; before each `stop` the container is started again, untimed). The
  container's process stops at once on SIGTERM, so `stop` measures the call, not a grace
  period. *Direct* is the plugin with no monitor running: a fresh SSH connection and
  handshake (ed25519 pool key, pinned host key) and a new `docker system dial-stdio` per
  call, as the retired pack did (it also paid a Python 2 start and RSA keys). *Docker's
  own time* is the same requests sent straight to the engine's socket: the part no
  transport can save. *Bare Python* is `python3 -c pass` started in the host's dom0
  namespace; the *no-op plugin* is a plugin that only prints its answer, through
  `host.call_plugin`: the floor of any plugin call.
- The fast path: the plugin file hands the call to the monitor before it imports
  anything heavy (XenAPI costs a dom0 Python ~30 ms, paramiko ~40 ms; the client needs
  only `_socket`, `os`, `sys` and pyexpat, 0.8 ms), and the monitor answers it with the
  plugin's own functions (operations.py) on the VM's warm connection.
- **Scale**: {scale_how}
  The load: one container of the shared engine paused and unpaused {load_rate} times a
  second for {load_s} s, so every followed VM sees {load_rate} container changes a second.
  "Writes" are XAPI write batches (one batch: the changed keys of one VM, each a
  `remove_from_other_config` + `add_to_other_config` pair); the monitor allows one batch
  per VM per second and coalesces what changes meanwhile (the latest value wins), so
  when XAPI is slower than the changes (500 VMs x {load_rate} changes/s here, while the
  lab's XAPI simulator, one Python process, takes about {calls} calls/s), each VM is
  written less often but always with its latest state, and nothing queues up: the
  outbox holds at most one pending batch per VM. `docker_info` (whose container counts
  change with every event) is re-read at most every 10 s, riding along with a
  `docker_ps` write.
- **One VM with 2000 containers**: 2000 containers created (not started) plus two
  running ones; the full resync is timed from the monitor's restart (SSH connect, then
  version, event stream, container list, info, render); `docker_ps` is parsed and its
  size checked against the budget (`DOCUMENT_BUDGET_BYTES`, counted after XML-RPC
  escaping). Over budget, optional fields and then the oldest exited containers are
  left out: the document stays valid.
"""


def _ms(v):
    return "%.1f ms" % v


def _table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def burst_rows(bursts, mode):
    """Back-to-back changes (a person's stop then start) and sustained churn."""
    if not bursts:
        return []
    b, sus = bursts["back_to_back"], bursts["sustained"]
    return [["%s: second of two back-to-back changes, p50 / p99 (n %d)" % (mode, b["n"]),
             "%.3f s / %.3f s" % (b["second_p50"], b["second_p99"]), "<= 0.1 s / <= 0.3 s"],
            ["%s: docker_ps writes per second under sustained churn (10 changes/s)" % mode,
             "%.2f" % sus["writes_per_second"], "<= 1"]]


def render(results):
    minutes = results["minutes"]
    lab = results["lab"]
    prop, lat, big = lab["propagation"], lab["latency"], lab["big_vm"]
    sc = results["scale"]
    parts = [INTRO.format(date=results["date"], machine=results["machine"], minutes=minutes)]
    parts.append("## Results\n")
    parts.append(_table(["what", "measured", "target"], [
        ["propagation p50", "%.3f s" % prop["p50"], "<= 0.3 s"],
        ["propagation p99", "%.3f s" % prop["p99"], "<= 1 s"],
        ["plugin `get_top`: ours / direct", "%s / %s (x%.1f)" % (
            _ms(lat["ours_get_top"]), _ms(lat["direct_get_top"]),
            lat["direct_get_top"] / lat["ours_get_top"]), ">= x5"],
        ["plugin `stop`: ours / direct", "%s / %s (x%.1f)" % (
            _ms(lat["ours_stop"]), _ms(lat["direct_stop"]),
            lat["direct_stop"] / lat["ours_stop"]), ">= x5"],
        ["`get_top` ours minus Docker's own time, vs bare Python",
         "%s vs %s (x%.2f)" % (_ms(lat["ours_get_top"] - lat["docker_top"]),
                               _ms(lat["bare_python"]),
                               (lat["ours_get_top"] - lat["docker_top"]) / lat["bare_python"]),
         "<= x1.5"],
        ["`stop` ours minus Docker's own time, vs bare Python",
         "%s vs %s (x%.2f)" % (_ms(lat["ours_stop"] - lat["docker_stop"]),
                               _ms(lat["bare_python"]),
                               (lat["ours_stop"] - lat["docker_stop"]) / lat["bare_python"]),
         "<= x1.5"],
        ["the same two, vs the no-op plugin through `host.call_plugin` (%s)"
         % _ms(lat["noop_plugin"]),
         "x%.2f, x%.2f" % ((lat["ours_get_top"] - lat["docker_top"]) / lat["noop_plugin"],
                           (lat["ours_stop"] - lat["docker_stop"]) / lat["noop_plugin"]),
         "<= x1.5"],
    ] + burst_rows(lab.get("bursts"), "SSH") + burst_rows(
        (results.get("agent") or {}).get("bursts"), "agent") + agent_rows(
        results.get("agent")) + [
        ["%d VMs: idle CPU / RSS" % s["vms"], "%.1f %% of a core / %.0f MB" % (
        100 * s["idle_cpu"], s["idle_rss_mb"]),
        "<= 2 % / <= 200 MB" if s["vms"] == 500 else ""] for s in sc] + [
        ["%d VMs under load: XAPI write batches per VM per second (max of one VM)" % s["vms"],
         "%.2f (%.2f)" % (s["writes_per_vm_s"], s["max_writes_one_vm_s"]),
         "<= 1" if s["vms"] == 500 else ""] for s in sc] + [
        ["2000 containers: docker_ps valid, size / budget",
         "%d of %d shown, %d / %d bytes" % (big["shown"], big["containers"],
                                            big["wire_bytes"], big["budget"]), "valid, fits"],
        ["2000 containers: full resync", "%.2f s (+ %.2f s SSH connect)" % (
            big["resync_s"], big["connect_s"]), ""],
    ]))
    parts.append("\n### Plugin call latency (medians)\n")
    parts.append(_table(["call", "ours (monitor fast path)", "direct (fresh SSH per call)",
                         "Docker's own time"], [
        ["`get_top`", _ms(lat["ours_get_top"]), _ms(lat["direct_get_top"]),
         _ms(lat["docker_top"])],
        ["`stop`", _ms(lat["ours_stop"]), _ms(lat["direct_stop"]), _ms(lat["docker_stop"])],
        ["bare `python3 -c pass` in dom0", _ms(lat["bare_python"]), "", ""],
        ["no-op plugin through `host.call_plugin`", _ms(lat["noop_plugin"]), "", ""],
    ]))
    parts.append("\n### Scale\n")
    parts.append(_table(["VMs", "all followed after", "threads", "idle CPU", "idle RSS",
                         "load CPU", "load RSS", "XAPI calls/s", "batches/VM/s (max)"], [
        [s["vms"], "%.1f s" % s["follow_s"], s["threads"], "%.1f %%" % (100 * s["idle_cpu"]),
         "%.0f MB" % s["idle_rss_mb"], "%.0f %%" % (100 * s["load_cpu"]),
         "%.0f MB" % s["load_rss_mb"], "%.0f" % s["xapi_calls_s"],
         "%.2f (%.2f)" % (s["writes_per_vm_s"], s["max_writes_one_vm_s"])] for s in sc]))
    parts.append("\n### One VM with 2000 containers\n")
    parts.append(_table(["containers", "shown in docker_ps", "document size (wire)",
                         "SSH connect", "full resync", "monitor RSS",
                         "one change among them: p50 / max"], [
        [big["containers"], big["shown"], "%d bytes" % big["wire_bytes"],
         "%.2f s" % big["connect_s"], "%.2f s" % big["resync_s"],
         "%.0f MB" % big["monitor_rss_mb"],
         "%.3f s / %.3f s" % (big["propagation_p50"], big["propagation_max"])]]))
    if results.get("agent"):
        parts.append("\n" + render_agent(results["agent"]))
    transport = _table(["client", "processes", "threads", "memory (PSS)", "idle CPU"], [
        [t["client"], t["processes"], t["threads"], "%.0f MB" % t["pss_mb"],
         "%.2f %% of a core" % (100 * t["idle_cpu"])] for t in results["transport"]])
    parts.append("\n" + DESIGN.format(transport=transport))
    parts.append(NOTES.format(
        prop_n=prop["n"], prop_runs=len(prop["runs"]),
        prop_runs_text="; ".join("p50 %.3f s, p99 %.3f s" % (r["p50"], r["p99"])
                                 for r in prop["runs"]),
        scale_how=scale_how(), load_rate="%g" % scale.LOAD_CHANGES_PER_SECOND,
        load_s="%g" % scale.LOAD_SECONDS,
        calls="%.0f" % max(s["xapi_calls_s"] for s in sc)))
    return "\n".join(parts) + "\n"


def _cpu(share):
    return "%.2f %% of a core" % (100 * share)


def agent_rows(agent):
    if not agent:
        return []
    prop, res = agent["propagation"], agent["resources"]
    return [
        ["agent mode: propagation p50", "%.3f s" % prop["p50"], "<= 0.3 s"],
        ["agent mode: propagation p99", "%.3f s" % prop["p99"], "<= 1 s"],
        ["agent mode: plugin `get_top` / `stop` / `start`, agent vs SSH",
         " / ".join("%s vs %s" % (_ms(agent["agent"][k]), _ms(agent["ssh"][k]))
                    for k in ("get_top", "stop", "start")), ""],
        ["guest agent idle: CPU / RSS", "%s / %.1f MB" % (_cpu(res["idle_cpu"]),
                                                           res["idle_rss_mb"]),
         "<= 0.5 % / <= 40 MB"],
        ["guest agent under load: CPU / RSS", "%s / %.1f MB" % (_cpu(res["load_cpu"]),
                                                                 res["load_rss_mb"]), ""],
    ]


AGENT_NOTES = """Measured {date} on one lab pool of 2 hosts and 2 VMs, the guest agent running in
each VM (its xenbus socket, its real Docker Engine), in {seconds:.0f} s
(`python -m bench --agent-only`).

- **Propagation**: the same measure as in SSH mode above, with the VM registered in
  agent mode (the monitor follows it through xenstore): a container paused or unpaused
  through the VM's engine socket until `docker_ps` in `VM.other_config` shows it, one
  change every 1.1 s, {prop_n} changes (max {prop_max:.3f} s).
- **Plugin calls**: `host.call_plugin` to the host the VM runs on, with its monitor
  following the VM; medians of {n} calls each (`stop` and `start` alternate on a
  container that exits at once on SIGTERM). The same VM and run: first registered in SSH
  mode (after `prepare`), then deregistered and registered in agent mode (the monitor
  keeps a VM's follower when only its transport changes, so the benchmark deregisters
  first). *Docker's own time* is the same requests sent straight to the engine's socket.
- **Agent CPU and RSS**: of the agent process of vm0 (`/proc/<pid>/stat` and `status`;
  the lab runs it under the development Python), the VM followed through it. Idle over
  {idle_s:g} s; under load over {load_s:g} s: a container paused or unpaused {rate:g} times
  a second ({toggles} changes) plus {burst} containers created at once.
  CPU is counted in clock ticks (10 ms), so 0.00 % means less than 0.05 % over 20 s;
  RSS is the largest of the samples taken every 0.5 s. {threads} threads.
"""


def render_agent(agent):
    prop, res, ssh, ag, dk = (agent["propagation"], agent["resources"], agent["ssh"],
                              agent["agent"], agent["docker"])
    out = ["## Agent mode\n"]
    out.append(_table(["", "p50", "p99", "target"], [
        ["propagation (agent mode)", "%.3f s" % prop["p50"], "%.3f s" % prop["p99"],
         "p50 <= 0.3 s, p99 <= 1 s"]]))
    out.append("\n### Plugin call latency, agent mode vs SSH mode (medians)\n")
    out.append(_table(["call", "agent mode", "SSH mode", "Docker's own time"], [
        ["`%s`" % k, _ms(ag[k]), _ms(ssh[k]), _ms(dk[k])]
        for k in ("get_top", "stop", "start")]))
    out.append("\n### Guest agent resources\n")
    out.append(_table(["", "CPU", "RSS", "target"], [
        ["idle", _cpu(res["idle_cpu"]), "%.1f MB" % res["idle_rss_mb"],
         "<= 0.5 % of a core, <= 40 MB"],
        ["under load", _cpu(res["load_cpu"]), "%.1f MB" % res["load_rss_mb"], ""]]))
    out.append("\n" + AGENT_NOTES.format(
        date=agent["date"], seconds=agent["seconds"], prop_n=prop["n"],
        prop_max=prop["max"], n=ag["n"], idle_s=res["idle_s"], load_s=res["load_s"],
        rate=agent_bench.LOAD_TOGGLES_PER_SECOND, toggles=res["load_toggles"],
        burst=res["load_burst"], threads=res["threads"]))
    return "\n".join(out)


def scale_how():
    from bench import fakevms
    doc = fakevms.__doc__.split("How they are made:", 1)[1].split("Everything is made")[0]
    items = [" ".join(part.split()) for part in doc.strip().lstrip("-").split("\n- ")]
    return ("the VMs are real SSH endpoints reaching a real Docker Engine:\n"
            + "\n".join("  - " + item for item in items)
            + "\n  Idle is measured over %g s once the request channels have closed "
            "(`request_idle` set to %s s for the benchmark, 300 s by default); the monitor "
            "runs under dom0's Python 3.6 with the wheels the pack ships."
            % (scale.IDLE_SECONDS, scale.SETTINGS["request_idle"]))


RESULTS = os.path.join(REPO, "build", "benchmarks.json")
SHORT_RESULTS = os.path.join(REPO, "build", "benchmarks-short.json")


def main(argv):
    if argv[1:] == ["--render"]:        # the document again from the last results
        with open(RESULTS) as f:
            results = json.load(f)
    elif argv[1:] == ["--agent-only"]:  # agent mode again, merged into the last results
        if not os.path.exists(RESULTS):
            sys.exit("%s: no results to merge into; run `python -m bench` first" % RESULTS)
        log("agent-mode benchmarks: propagation, plugin latency, agent CPU and RSS")
        agent = agent_bench.run()
        with open(RESULTS) as f:
            results = json.load(f)
        results["agent"] = agent
        with open(RESULTS, "w") as f:
            json.dump(results, f, indent=1)
    else:
        if argv[1:] not in ([], ["--short"]) or (argv[1:] == ["--short"]) != SHORT:
            sys.exit("usage: python -m bench [--render | --agent-only]; "
                     "XSCNG_BENCH_SHORT=1 python -m bench --short")
        started = time.time()
        log("lab benchmarks: propagation, plugin latency, 2000 containers")
        results = {"lab": lab_bench.run()}
        log("scale benchmarks: 100 and 500 VMs, transport choice")
        results.update(scale.run())
        log("agent-mode benchmarks: propagation, plugin latency, agent CPU and RSS")
        results["agent"] = agent_bench.run()
        results.update(minutes=(time.time() - started) / 60.0, machine=machine(),
                       date=datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"))
        os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
        with open(SHORT_RESULTS if SHORT else RESULTS, "w") as f:
            json.dump(results, f, indent=1)
        if SHORT:
            sys.stdout.write(json.dumps(results, indent=1, sort_keys=True) + "\n")
            log("short form: figures above, not judged; written %s" % SHORT_RESULTS)
            return
    text = render(results)
    os.makedirs(os.path.dirname(DOC), exist_ok=True)
    with open(DOC, "w") as f:
        f.write(text)
    sys.stdout.write(text)
    log("written %s" % DOC)


if __name__ == "__main__":
    main(sys.argv)
