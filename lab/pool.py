"""Bringing a lab pool up and down: xenstored, one dom0 namespace per host, the XAPI
simulator, VMs (started through XAPI, as an admin would), the monitor and the guest agent."""
import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid as uuidlib

from . import dom0, prereqs, proc, vm
from .state import Paths, Runtime, locked, read_json, write_json

MONITOR_SCRIPT = dom0.LIBDIR + "/dom0_plugin/bin/xscontainer-monitor"
PLUGIN_SOURCE = os.path.join(dom0.REPO, "dom0_plugin", "plugins")
AGENT_MODULE = "guest_agent"


class LabError(RuntimeError):
    pass


def _py(module, *args):
    return [sys.executable, "-m", module] + list(args)


def _lab_env():
    return dict(os.environ, PYTHONPATH=dom0.REPO)


# ---------------------------------------------------------------- up

def up(state, vms=2, hosts=2, agent=False, monitor=True, dom0_root=None):
    prereqs.check()
    if hosts < 1 or vms < 0:
        raise LabError("need at least one host and a non-negative number of VMs")
    paths = Paths(state)
    if os.path.exists(paths.lab_json) or os.path.exists(paths.runtime_json):
        raise LabError("a lab already uses %s: run `python -m lab down --state %s` first"
                       % (paths.state, state))
    created_state = not os.path.exists(paths.state)
    os.makedirs(paths.logs, exist_ok=True)
    rt = Runtime(paths)
    rt.update(lambda r: r.update(created_state=created_state, run_dir=paths.run,
                                 lab_id=paths.lab_id))
    os.makedirs(paths.run, exist_ok=True)
    os.chmod(paths.run, 0o755)
    python = prereqs.dom0_python()
    try:
        _up(paths, rt, vms, hosts, agent, monitor, dom0_root, python)
    except BaseException:
        sys.stderr.write("lab up failed; cleaning up (logs in %s)\n" % paths.logs)
        keep = os.path.join(os.path.dirname(paths.state), ".lab-failed-logs")
        shutil.rmtree(keep, ignore_errors=True)
        shutil.copytree(paths.logs, keep, dirs_exist_ok=True)
        down(state)
        sys.stderr.write("logs of the failed run kept in %s\n" % keep)
        raise


def _up(paths, rt, n_vms, n_hosts, agent, monitor, dom0_root, python):
    start_xenstored(paths, rt)
    pool_uuid = str(uuidlib.uuid4())
    hosts = []
    for i in range(n_hosts):
        name = "host%d" % i
        h = {"uuid": str(uuidlib.uuid4()), "dom0_uuid": str(uuidlib.uuid4()), "name": name,
             "plugin_dir": os.path.join(paths.host_dir(name), "plugins")}
        os.makedirs(h["plugin_dir"], exist_ok=True)
        install_plugins(h["plugin_dir"], dom0_root)
        spec = dom0.host_spec(paths, i, h, python, dom0_root)
        h["ns_pid"] = dom0.start_host_namespace(paths, rt, name, spec)
        hosts.append(h)
    net_base = _free_net_base(n_vms)
    vms = []
    for i in range(n_vms):
        name = "vm%d" % i
        spec = vm.spec_for(paths, i, name, str(uuidlib.uuid4()), net_base)
        rt.update(lambda r: r.setdefault("vms", {}).__setitem__(spec["uuid"], spec))
        vm.provision(paths, rt, spec)
        vms.append(spec)
    vm.build_image_tar(paths)
    creds = {"username": "root", "password": secrets.token_urlsafe(12),
             "readonly_username": "auditor", "readonly_password": secrets.token_urlsafe(12)}
    xapi_cfg = {
        "tcp": ["127.0.0.1", 0],
        "unix_sockets": [paths.xapi_socket] + [paths.host_socket(i) for i in range(n_hosts)],
        "port_file": os.path.join(paths.xapi_dir, "port"),
        "db": os.path.join(paths.xapi_dir, "db.json"),
        "log": paths.log("xapi"),
        "users": {creds["username"]: {"password": creds["password"], "role": "pool-admin"},
                  creds["readonly_username"]: {"password": creds["readonly_password"],
                                               "role": "read-only"}},
        "pool": {"uuid": pool_uuid, "name_label": "lab pool"},
        "hosts": [{"uuid": h["uuid"], "name_label": h["name"], "address": "127.0.0.1",
                   "dom0_uuid": h["dom0_uuid"], "plugin_dir": h["plugin_dir"],
                   "exec_prefix": dom0.exec_prefix(h["ns_pid"]),
                   "plugin_exec_dir": dom0.PLUGIN_DIR, "env": dom0.plugin_env(python)}
                  for h in hosts],
        "vms": [{"uuid": s["uuid"], "name_label": s["name"], "host_uuid": None,
                 "power_state": "Halted", "VCPUs_max": "4", "VCPUs_at_startup": "2",
                 "memory_static_max": str(2 << 30), "memory_dynamic_max": str(1 << 30),
                 "memory_dynamic_min": str(512 << 20)} for s in vms],
        "vm_hook": [sys.executable, "-m", "lab", "vm-hook", "--state", paths.state],
    }
    os.makedirs(paths.xapi_dir, exist_ok=True)
    write_json(os.path.join(paths.xapi_dir, "config.json"), xapi_cfg)
    port = start_xapi(paths, rt)
    lab = {
        "xapi": {"url": "http://127.0.0.1:%d" % port, "unix_socket": paths.xapi_socket,
                 "username": creds["username"], "password": creds["password"],
                 "readonly_username": creds["readonly_username"],
                 "readonly_password": creds["readonly_password"]},
        "image": vm.IMAGE,
        "pool_uuid": pool_uuid,
        "dom0_python": python,
        "hosts": [{"uuid": h["uuid"], "name": h["name"], "plugin_dir": h["plugin_dir"],
                   "ns_pid": h["ns_pid"]} for h in hosts],
        "xenstored": {"dom0_socket": paths.xenstored_socket},
        "vms": [{"uuid": s["uuid"], "name": s["name"], "host_uuid": None, "domid": None,
                 "ip": s["ip"], "ip6": s["ip6"], "docker_socket": s["docker_socket"],
                 "ssh": {"host": s["ip"], "port": 22, "user": s["user"],
                         "password": s["password"],
                         # what the VM's console would show an admin
                         "fingerprint": vm.host_fingerprint(s)},
                 "xenbus_socket": s["xenbus_socket"], "netns": s["netns"]} for s in vms],
        "agent": agent,
        "monitor": monitor,
    }
    with locked(paths):
        write_json(paths.lab_json, lab)
    session = xapi_session(lab)
    try:
        host_refs = [session.xenapi.host.get_by_uuid(h["uuid"]) for h in hosts]
        for i, s in enumerate(vms):
            ref = session.xenapi.VM.get_by_uuid(s["uuid"])
            session.xenapi.VM.start_on(ref, host_refs[i % len(host_refs)], False, False)
    finally:
        session.xenapi.session.logout()
    if monitor:
        for h in hosts:
            start_monitor(paths, rt, h["name"])


def xapi_session(lab, readonly=False):
    import XenAPI
    s = XenAPI.Session(lab["xapi"]["url"])
    if readonly:
        s.xenapi.login_with_password(lab["xapi"]["readonly_username"],
                                     lab["xapi"]["readonly_password"], "1.0", "lab")
    else:
        s.xenapi.login_with_password(lab["xapi"]["username"], lab["xapi"]["password"],
                                     "1.0", "lab")
    return s


def install_plugins(plugin_dir, dom0_root):
    """Put the product's plugin files where xapi looks for them (source tree or install)."""
    src = (os.path.join(dom0_root, dom0.PLUGIN_DIR.lstrip("/")) if dom0_root
           else PLUGIN_SOURCE)
    if not os.path.isdir(src):
        return
    for name in os.listdir(src):
        path = os.path.join(src, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            link = os.path.join(plugin_dir, name)
            if not os.path.lexists(link):
                if dom0_root:
                    shutil.copy2(path, link)
                else:
                    os.symlink(path, link)


def _free_net_base(n_vms):
    blocks = max(1, (n_vms + 63) // 64)
    used = subprocess.run(["ip", "-4", "-o", "addr"], stdout=subprocess.PIPE).stdout.decode()
    for base in range(16, 250 - blocks, blocks):
        if not any(("10.231.%d." % (base + b)) in used for b in range(blocks)):
            return base
    raise LabError("no free 10.231.x.0/24 block for the lab's VM networks")


# ---------------------------------------------------------------- services

def start_xenstored(paths, rt):
    os.makedirs(paths.xenbus_dir, exist_ok=True)
    os.chmod(paths.xenbus_dir, 0o755)
    pid = proc.spawn(_py("lab.xenstored", "--dom0-socket", paths.xenstored_socket,
                         "--guest-socket-dir", paths.xenbus_dir,
                         "--log", paths.log("xenstored")),
                     paths.log("xenstored.out"), env=_lab_env(), cwd=dom0.REPO)
    rt.note("pids", "xenstored", [pid, "lab.xenstored"])
    proc.wait_for(lambda: proc.unix_socket_ready(paths.xenstored_socket) or not proc.alive(pid),
                  30, "xenstored")
    if not proc.alive(pid):
        raise LabError("xenstored did not start: see %s" % paths.log("xenstored.out"))
    return pid


def start_xapi(paths, rt):
    port_file = os.path.join(paths.xapi_dir, "port")
    if os.path.exists(port_file):
        os.unlink(port_file)
    pid = proc.spawn(_py("lab.xapi", "--config", os.path.join(paths.xapi_dir, "config.json")),
                     paths.log("xapi.out"), env=_lab_env(), cwd=dom0.REPO)
    rt.note("pids", "xapi", [pid, "lab.xapi"])
    proc.wait_for(lambda: os.path.exists(port_file) or not proc.alive(pid), 30,
                  "the XAPI simulator")
    if not proc.alive(pid):
        raise LabError("the XAPI simulator did not start: see %s" % paths.log("xapi.out"))
    port = int(proc.wait_for(lambda: open(port_file).read().strip(), 5, "the xapi port"))
    proc.wait_for(lambda: proc.unix_socket_ready(paths.xapi_socket), 10, "the xapi socket")
    return port


def start_monitor(paths, rt, host_name):
    """Start xscontainer-monitor in a host's dom0 namespace, as systemd would."""
    lab = read_json(paths.lab_json)
    host = [h for h in lab["hosts"] if h["name"] == host_name][0]
    python = lab["dom0_python"]
    probe = dom0.run_in_host(host["ns_pid"], ["/bin/test", "-f", MONITOR_SCRIPT], python)
    if probe.returncode != 0:
        sys.stderr.write("note: %s is not installed: monitor not started on %s\n"
                         % (MONITOR_SCRIPT, host_name))
        return None
    env = dom0.plugin_env(python)
    pid = proc.spawn(dom0.exec_prefix(host["ns_pid"]) + ["/usr/bin/python3", MONITOR_SCRIPT],
                     paths.log("monitor-" + host_name), env=env)
    rt.note("pids", "monitor-" + host_name, [pid, MONITOR_SCRIPT])
    return pid


AGENT_ALLOW = "start, stop, restart, pause, unpause, top, inspect, logs"


def agent_config(paths, spec):
    """The lab VM's /etc/xscontainer-agent/agent.conf: its owner allows every verb (tests
    rewrite it to turn the request channel off)."""
    path = os.path.join(paths.vm_state(spec["name"]), "agent.conf")
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write("[requests]\nallow = %s\n" % AGENT_ALLOW)
    return path


def start_agent(paths, rt, spec):
    """Start the guest agent of a VM, as its systemd unit would in the guest."""
    argv = vm._ns_argv(spec, [sys.executable, "-m", AGENT_MODULE, "--xenbus",
                              spec["xenbus_socket"], "--docker", "unix://" + spec["docker_socket"],
                              "--config", agent_config(paths, spec)])
    pid = proc.spawn(argv, paths.log("agent-" + spec["name"]), env=_lab_env(), cwd=dom0.REPO)
    rt.note("pids", "agent-" + spec["name"], [pid, AGENT_MODULE])
    return pid


def stop_recorded(rt, key):
    rec = rt.load().get("pids", {}).get(key)
    if rec:
        proc.stop(rec[0], rec[1])
        rt.forget("pids", key)


def restart(state, service, host=None):
    paths = Paths(state)
    rt = Runtime(paths)
    lab = read_json(paths.lab_json)
    if service == "xapi":
        stop_recorded(rt, "xapi")
        # the same address as before: clients keep the URL of lab.json
        cfg_path = os.path.join(paths.xapi_dir, "config.json")
        cfg = read_json(cfg_path)
        cfg["tcp"] = ["127.0.0.1", int(lab["xapi"]["url"].rsplit(":", 1)[1])]
        write_json(cfg_path, cfg)
        start_xapi(paths, rt)
    elif service == "xenstored":
        stop_recorded(rt, "xenstored")
        start_xenstored(paths, rt)
    elif service == "agent":
        specs = rt.load().get("vms", {}).values()
        for spec in specs:
            if host in (None, spec["name"]):
                stop_recorded(rt, "agent-" + spec["name"])
                start_agent(paths, rt, spec)
    elif service == "monitor":
        for h in lab["hosts"]:
            if host in (None, h["name"]):
                stop_recorded(rt, "monitor-" + h["name"])
                start_monitor(paths, rt, h["name"])


# ---------------------------------------------------------------- the simulator's VM hook

def vm_hook(state, op, vm_uuid, host_uuid, domid, old_domid=None):
    """Called by the XAPI simulator around VM power operations (see lab/xapi)."""
    paths = Paths(state)
    rt = Runtime(paths)
    spec = rt.load().get("vms", {}).get(vm_uuid)
    if spec is None:
        return None  # a clone or snapshot: no lab machine behind it
    lab = read_json(paths.lab_json)
    if op == "start":
        nets = vm.start(paths, spec, domid)
    elif op == "stop":
        stop_recorded(rt, "agent-" + spec["name"])
        vm.stop(paths, spec, old_domid or domid)
        nets = None
    elif op == "reboot":
        stop_recorded(rt, "agent-" + spec["name"])
        nets = vm.reboot(paths, spec, old_domid, domid)
    else:
        nets = vm.migrate(paths, spec, old_domid, domid)

    def record(lab_rec):
        for v in lab_rec["vms"]:
            if v["uuid"] == vm_uuid:
                v["domid"] = int(domid) if op != "stop" else None
                v["host_uuid"] = host_uuid if op != "stop" else None
    with locked(paths):
        lab = read_json(paths.lab_json)
        record(lab)
        write_json(paths.lab_json, lab)
    if lab.get("agent") and op in ("start", "reboot"):
        start_agent(paths, rt, spec)
    return {"networks": nets} if nets else None


# ---------------------------------------------------------------- down and status

def down(state):
    paths = Paths(state)
    rt = Runtime(paths)
    rec = rt.load()
    pids = rec.get("pids", {})
    # the product first (it talks to the rest), then the VMs, then the platform
    order = sorted(pids, key=lambda k: (not k.startswith(("monitor", "agent")), k != "xapi"))
    for key in order:
        pid, marker = pids[key]
        proc.stop(pid, marker)
        rt.forget("pids", key)
    for spec in rec.get("vms", {}).values():
        vm.stop_processes(spec)
    for ns in list(rec.get("netns", {})) + _leftover_netns(paths):
        vm.remove_netns(rt, ns, "")
    for link in list(rec.get("links", {})):
        subprocess.run(["ip", "link", "del", link], stderr=subprocess.DEVNULL)
        rt.forget("links", link)
    for user in set(rec.get("users", {})) | set(_leftover_users(paths)):
        vm.remove_user(rt, user)
    # anything else still running from our directories is ours (container shims, sessions)
    for marker in (paths.run + "/", os.path.join(paths.state, "vms") + "/"):
        for pid in proc.pids_with(marker):
            proc.stop(pid, marker, timeout=5)
    vm.unmount_below(paths.run)
    vm.unmount_below(paths.state)
    shutil.rmtree(paths.run, ignore_errors=True)
    if rec.get("created_state", True):
        shutil.rmtree(paths.state, ignore_errors=True)
    else:
        for name in os.listdir(paths.state) if os.path.isdir(paths.state) else []:
            p = os.path.join(paths.state, name)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                os.unlink(p)


def _leftover_netns(paths):
    prefix = "xscng-%s-" % paths.lab_id
    try:
        return [n for n in os.listdir("/run/netns") if n.startswith(prefix)]
    except OSError:
        return []


def _leftover_users(paths):
    prefix = "xl%sv" % paths.lab_id
    with open("/etc/passwd") as f:
        return [l.split(":")[0] for l in f if l.startswith(prefix)]


def status(state):
    paths = Paths(state)
    rt = Runtime(paths)
    rec = rt.load()
    if not rec:
        return {"state": paths.state, "up": False}
    procs = {k: proc.alive(v[0], v[1]) for k, v in rec.get("pids", {}).items()}
    out = {"state": paths.state, "up": True, "processes": procs, "vms": []}
    for spec in rec.get("vms", {}).values():
        out["vms"].append({
            "name": spec["name"], "ip": spec["ip"],
            "dockerd": bool(vm._pid_from(os.path.join(spec["run"], "dockerd.pid"), "dockerd")),
            "sshd": bool(vm._pid_from(os.path.join(spec["ssh_dir"], "sshd.pid"), "sshd")),
        })
    if os.path.exists(paths.lab_json):
        lab = read_json(paths.lab_json)
        out["xapi"] = lab["xapi"]["url"]
        try:
            s = xapi_session(lab)
            for v in out["vms"]:
                uuid = [x["uuid"] for x in lab["vms"] if x["name"] == v["name"]][0]
                ref = s.xenapi.VM.get_by_uuid(uuid)
                v["power_state"] = s.xenapi.VM.get_power_state(ref)
                v["domid"] = s.xenapi.VM.get_domid(ref)
            s.xenapi.session.logout()
        except Exception as e:  # status must report, not fail
            out["xapi_error"] = str(e)
    return out


def format_status(st):
    if not st.get("up"):
        return "no lab in %s" % st["state"]
    lines = ["lab in %s, XAPI at %s" % (st["state"], st.get("xapi", "?"))]
    for k, ok in sorted(st["processes"].items()):
        lines.append("  %-20s %s" % (k, "running" if ok else "NOT RUNNING"))
    for v in st["vms"]:
        lines.append("  %-6s %-14s %-8s domid %-4s dockerd %s sshd %s" % (
            v["name"], v["ip"], v.get("power_state", "?"), v.get("domid", "?"),
            "up" if v["dockerd"] else "down", "up" if v["sshd"] else "down"))
    if st.get("xapi_error"):
        lines.append("  xapi: %s" % st["xapi_error"])
    return "\n".join(lines)


def wait_until(fn, timeout=30.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(interval)
    return None
