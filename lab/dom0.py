"""The dom0 side of each lab host: the Python packages dom0 has, and a mount namespace per host
in which dom0's paths exist (/etc/xapi.d/plugins, /var/lib/xcp/xapi, /run/xenstored/socket,
/etc/xensource-inventory, /usr/bin/python3 = Python 3.6) without touching the real machine.

Plugins and the monitor run inside that namespace exactly as xapi and systemd run them in dom0.
"""
import os
import shutil
import subprocess
import sys
import zipfile

from . import prereqs, proc

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUIREMENTS = os.path.join(REPO, "pack", "dom0-requirements.txt")
WHEEL_CACHE = os.path.join(REPO, "build", "wheels-cp36")
DOM0_SITE_SRC = os.path.join(REPO, "lab", "dom0_site")
LIBDIR = "/usr/lib/xscontainer-ng"  # where the pack installs the dom0 library
PLUGIN_DIR = "/etc/xapi.d/plugins"
PLUGIN_ENV_PATH = "/sbin:/usr/sbin:/bin:/usr/bin"
CP36 = ["--python-version", "3.6", "--implementation", "cp", "--abi", "cp36m",
        "--platform", "manylinux2014_x86_64", "--only-binary=:all:"]


def requirements():
    with open(REQUIREMENTS) as f:
        return [l.split("#")[0].strip() for l in f if l.split("#")[0].strip()]


def fetch_wheels(reqs, dest=WHEEL_CACHE):
    """Download the cp36 wheels (once) into dest; return their paths."""
    os.makedirs(dest, exist_ok=True)
    wanted = {r.split("==")[0].lower().replace("-", "_") for r in reqs}

    def have():
        found = {}
        for w in os.listdir(dest):
            if w.endswith(".whl"):
                found[w.split("-")[0].lower().replace("-", "_")] = os.path.join(dest, w)
        return found
    if not wanted <= set(have()):
        proc.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", dest]
                 + CP36 + reqs)
    return [p for k, p in have().items() if k in wanted]


def unpack(wheels, target):
    os.makedirs(target, exist_ok=True)
    for w in wheels:
        with zipfile.ZipFile(w) as z:
            z.extractall(target)


def prepare(paths):
    """Build the dom0 software of the lab: dom0's own modules and the pack's private library."""
    site = os.path.join(paths.dom0_dir, "site")      # what dom0 itself has: XenAPI, XenAPIPlugin
    vendor = os.path.join(paths.dom0_dir, "vendor")  # what the pack ships: paramiko's stack...
    lib = os.path.join(paths.dom0_dir, "lib")        # = /usr/lib/xscontainer-ng in each host
    if not os.path.isdir(site):
        unpack(fetch_wheels(["XenAPI"]), site + ".tmp")
        shutil.copy(os.path.join(DOM0_SITE_SRC, "XenAPIPlugin.py"), site + ".tmp")
        os.replace(site + ".tmp", site)
    if not os.path.isdir(vendor):
        unpack(fetch_wheels(requirements()), vendor + ".tmp")
        os.replace(vendor + ".tmp", vendor)
    os.makedirs(lib, exist_ok=True)
    for name, target in (("dom0_plugin", os.path.join(REPO, "dom0_plugin")),
                         ("xsc_contract", os.path.join(REPO, "xsc_contract")),
                         ("vendor", vendor)):
        link = os.path.join(lib, name)
        if not os.path.lexists(link):
            os.symlink(target, link)
    return {"site": site, "lib": lib}


def plugin_env(python):
    """The environment xapi gives a plugin, plus only what the lab's Python needs to find
    dom0's modules and to behave like dom0's 3.6 (ASCII stdout)."""
    env = {"PATH": PLUGIN_ENV_PATH}
    home = _python_home(python)
    if home:
        env["PYTHONHOME"] = home
    env["PYTHONPATH"] = "/usr/lib/xscontainer-lab-site"
    if not _is_36(python):
        env["PYTHONIOENCODING"] = "ascii:strict"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _is_36(python):
    return os.path.basename(python).startswith("python3.6")


def _python_home(python):
    real = os.path.realpath(python)
    prefix = os.path.dirname(os.path.dirname(real))
    if prefix not in ("/usr", "/usr/local"):
        return prefix
    return None


def host_spec(paths, index, host, python, dom0_root=None):
    """What the namespace of one host mounts (consumed by lab.hostns in the new namespace)."""
    hdir = paths.host_dir(host["name"])
    soft = prepare(paths)
    # The lab's sockets are reached through a bind of the real run dir: a socket seen
    # through an overlay (or behind the namespace's private /run) refuses connections.
    sockets = "/var/lib/xscng-lab"
    binds = [
        (paths.run, sockets, "dir"),
        (host["plugin_dir"], PLUGIN_DIR, "dir"),
        (os.path.join(hdir, "log"), "/var/log", "dir"),
        (soft["site"], "/usr/lib/xscontainer-lab-site", "dir"),
        (python, "/usr/bin/python3", "file"),
    ]
    if dom0_root:
        binds.append((os.path.join(dom0_root, LIBDIR.lstrip("/")), LIBDIR, "dir"))
    else:
        binds.append((soft["lib"], LIBDIR, "dir"))
    symlinks = [
        (os.path.join(sockets, os.path.basename(paths.host_socket(index))), "/var/lib/xcp/xapi"),
        (os.path.join(sockets, os.path.basename(paths.xenstored_socket)),
         "/run/xenstored/socket"),
    ]
    files = {
        "/etc/xensource-inventory": "".join(
            "%s='%s'\n" % kv for kv in (("INSTALLATION_UUID", host["uuid"]),
                                        ("CONTROL_DOMAIN_UUID", host["dom0_uuid"]),
                                        ("PRODUCT_BRAND", "XCP-ng lab"),
                                        ("PRODUCT_VERSION", "8.3.0"))),
        "/etc/xensource/pool.conf": "master" if index == 0 else "slave:127.0.0.1",
    }
    return {"overlays": ["/etc", "/var", "/usr"], "tmpfs": ["/run"],
            "overlay_dir": os.path.join(hdir, "ovl"), "binds": binds, "symlinks": symlinks,
            "files": files}


def start_host_namespace(paths, rt, name, spec):
    """Start the holder process of a host's mount namespace; return its pid."""
    hdir = paths.host_dir(name)
    os.makedirs(os.path.join(hdir, "log"), exist_ok=True)
    spec_path = os.path.join(hdir, "ns.json")
    from .state import write_json
    write_json(spec_path, spec)
    ready = os.path.join(hdir, "ns.ready")
    if os.path.exists(ready):
        os.unlink(ready)
    pid = proc.spawn(["unshare", "--mount", "--propagation", "private", "--",
                      sys.executable, "-m", "lab.hostns", spec_path, ready],
                     paths.log("hostns-" + name), env=_lab_env(), cwd=REPO)
    rt.note("pids", "hostns-" + name, [pid, "lab.hostns"])
    proc.wait_for(lambda: os.path.exists(ready) or not proc.alive(pid), 30,
                  "the dom0 namespace of %s" % name)
    if not proc.alive(pid):
        raise RuntimeError("the dom0 namespace of %s failed: see %s"
                           % (name, paths.log("hostns-" + name)))
    return pid


def exec_prefix(holder_pid):
    return ["/usr/bin/nsenter", "--mount=/proc/%d/ns/mnt" % holder_pid, "--"]


def _lab_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO
    return env


def run_in_host(holder_pid, argv, python, timeout=60, extra_env=None):
    """Run a command in a host's dom0 view, with a dom0-like environment."""
    env = plugin_env(python)
    env.update(extra_env or {})
    return subprocess.run(exec_prefix(holder_pid) + argv, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, stdin=subprocess.DEVNULL)


def check_python():
    return prereqs.dom0_python()
