"""Bringing a lab up and down from tests, as a user would (`python -m lab ...`)."""
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def lab_cmd(*args, check=True, timeout=600):
    res = subprocess.run([sys.executable, "-m", "lab"] + list(args), cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    out = res.stdout.decode(errors="replace")
    if check and res.returncode != 0:
        raise AssertionError("python -m lab %s failed (%d):\n%s" % (" ".join(args),
                                                                     res.returncode, out))
    return res.returncode, out


class Lab(object):
    """A running lab: its lab.json plus helpers to reach XAPI."""

    def __init__(self, state):
        self.state = state
        with open(os.path.join(state, "lab.json")) as f:
            self.info = json.load(f)

    def reload(self):
        with open(os.path.join(self.state, "lab.json")) as f:
            self.info = json.load(f)
        return self.info

    def session(self, readonly=False):
        import XenAPI
        x = self.info["xapi"]
        s = XenAPI.Session(x["url"])
        if readonly:
            s.xenapi.login_with_password(x["readonly_username"], x["readonly_password"],
                                         "1.0", "tests")
        else:
            s.xenapi.login_with_password(x["username"], x["password"], "1.0", "tests")
        return s

    def vm(self, name):
        return [v for v in self.reload()["vms"] if v["name"] == name][0]

    def host(self, name):
        return [h for h in self.info["hosts"] if h["name"] == name][0]


def start_lab(*extra):
    state = tempfile.mkdtemp(prefix="xscng-lab-", dir="/tmp")
    os.rmdir(state)  # `lab up` creates it (and so `lab down` removes it)
    lab_cmd("up", "--state", state, *extra)
    return Lab(state)


def stop_lab(lab):
    lab_cmd("down", "--state", lab.state)


def docker(vm, *args, check=True, timeout=120):
    """The docker CLI against a lab VM's own engine (as a developer inside it would)."""
    env = dict(os.environ, DOCKER_HOST="unix://" + vm["docker_socket"])
    res = subprocess.run(["docker"] + list(args), env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError("docker %s: %s" % (" ".join(args), res.stderr.decode()))
    return res.stdout.decode().strip()


def wait_for(fn, timeout=30.0, interval=0.05, what="condition"):
    """Poll fn until it returns a true value (returned); fail after timeout seconds."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("%s not met within %ss (last: %r)" % (what, timeout, last))
