#!/usr/bin/env python3
"""The demo: a lab pool, then the whole path an admin takes with xscontainer-ng.

Run with `make demo` (or `.venv/bin/python tools/demo.py [--keep]`). Every step prints the
command it runs, so you can repeat it by hand on the lab (`--keep` leaves the lab up).
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import time
import xml.dom.minidom

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.dirname(sys.executable)


def step(title):
    print("\n\033[1m== %s\033[0m" % title, flush=True)


def run(argv, env=None, check=True):
    print("$ " + " ".join(shlex.quote(a) for a in argv), flush=True)
    res = subprocess.run(argv, env=env, cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    out = res.stdout.decode(errors="replace")
    sys.stdout.write(out)
    if check and res.returncode != 0:
        raise SystemExit("step failed (exit %d)" % res.returncode)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--state", default=os.path.join(REPO, ".lab", "demo"))
    ap.add_argument("--keep", action="store_true", help="leave the lab up at the end")
    args = ap.parse_args()
    py = sys.executable
    if os.path.exists(os.path.join(args.state, "runtime.json")):
        run([py, "-m", "lab", "down", "--state", args.state])
    step("1. A lab pool: 2 hosts (dom0 namespaces), 2 VMs (netns + dockerd + sshd), XAPI, xenstored")
    run([py, "-m", "lab", "up", "--state", args.state, "--hosts", "2", "--vms", "2"])
    try:
        demo(py, args.state)
    finally:
        if not args.keep:
            step("Tearing the lab down")
            run([py, "-m", "lab", "down", "--state", args.state])
        else:
            print("\nlab left up: python -m lab down --state %s" % args.state)


def demo(py, state):
    with open(os.path.join(state, "lab.json")) as f:
        lab = json.load(f)
    vm = lab["vms"][0]
    x = lab["xapi"]
    env = dict(os.environ, XSCONTAINER_SERVER=x["url"], XSCONTAINER_USER=x["username"],
               XSCONTAINER_PASSWORD=x["password"], XSCONTAINER_VM_PASSWORD=vm["ssh"]["password"])
    cli = [os.path.join(VENV_BIN, "xscontainer")]
    denv = dict(os.environ, DOCKER_HOST="unix://" + vm["docker_socket"])

    step("2. Inside %s, a developer runs containers" % vm["name"])
    run(["docker", "run", "-d", "--name", "web", lab["image"], "httpd", "-f", "-p", "8080"],
        env=denv)
    run(["docker", "run", "-d", "--name", "worker", "--label", "team=a&b", lab["image"],
         "sh", "-c", "while true; do echo tick; sleep 5; done"], env=denv)

    step("3. The admin enrols the VM: the pool key is authorized, the host key pinned")
    run(cli + ["public-key"], env=env)
    # the fingerprint as the VM's console shows it (ssh-keygen -lf ...): nothing is sent
    # to a VM whose key was not verified
    run(cli + ["prepare", vm["name"], vm["ssh"]["user"], "--fingerprint",
               vm["ssh"]["fingerprint"]], env=env)

    step("4. ... and registers it for container management")
    run(cli + ["register", vm["name"]], env=env)
    run(cli + ["ps", vm["name"]], env=env)

    step("5. What Xen Orchestra and XenCenter read: VM.other_config['docker_ps']")
    doc = other_config(lab, vm)["docker_ps"]
    print(xml.dom.minidom.parseString(doc).toprettyxml(indent="  ")[:1500])

    step("6. Stop and start a container through the plugin (host.call_plugin)")
    run(cli + ["stop", vm["name"], "web"], env=env)
    run(cli + ["ps", vm["name"]], env=env)
    run(cli + ["start", vm["name"], "web"], env=env)
    run(cli + ["top", vm["name"], "web"], env=env)
    run(cli + ["logs", vm["name"], "worker", "--tail", "3"], env=env)

    step("7. Live: a change inside the VM reaches VM.other_config (xscontainer-monitor)")
    run(["docker", "run", "-d", "--name", "newcomer", lab["image"], "sleep", "3600"], env=denv)
    start = time.time()
    while time.time() - start < 30:
        if "newcomer" in other_config(lab, vm).get("docker_ps", ""):
            print("docker_ps shows 'newcomer' %.2f s after it started" % (time.time() - start))
            break
        time.sleep(0.05)
    else:
        print("docker_ps did not show the new container within 30 s (is the monitor running?)")
    status = other_config(lab, vm).get("xscontainer-status")
    if status:
        print("xscontainer-status: %s" % status)


def other_config(lab, vm):
    import XenAPI
    s = XenAPI.Session(lab["xapi"]["url"])
    s.xenapi.login_with_password(lab["xapi"]["username"], lab["xapi"]["password"], "1.0",
                                 "demo")
    try:
        return s.xenapi.VM.get_other_config(s.xenapi.VM.get_by_uuid(vm["uuid"]))
    finally:
        s.xenapi.session.logout()


if __name__ == "__main__":
    main()
