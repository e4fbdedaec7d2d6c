"""Start and stop a simulator process from tests (real process, real sockets).

Paths are made without underscores: the XenAPI client turns ``_`` into ``/`` in a Unix
socket URL.
"""
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid as uuidlib
from contextlib import contextmanager

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_workdir(prefix="xapisim"):
    path = "/tmp/%s-%s" % (prefix, secrets.token_hex(6))
    os.mkdir(path, 0o755)
    return path


def basic_config(workdir, n_hosts=2, vms=(), users=None, **extra):
    """A config for ``n_hosts`` hosts with plugin dirs under ``workdir``."""
    hosts = []
    for i in range(n_hosts):
        pdir = os.path.join(workdir, "plugins%d" % i)
        os.makedirs(pdir, exist_ok=True)
        hosts.append({"uuid": str(uuidlib.uuid4()), "name_label": "host%d" % i,
                      "address": "127.0.0.%d" % (i + 1), "plugin_dir": pdir,
                      "exec_prefix": [], "plugin_exec_dir": pdir,
                      "env": {"PATH": "/sbin:/usr/sbin:/bin:/usr/bin"}})
    cfg = {
        "tcp": ["127.0.0.1", 0],
        "unix_sockets": [os.path.join(workdir, "xapi.sock")],
        "port_file": os.path.join(workdir, "port"),
        "db": os.path.join(workdir, "db.json"),
        "log": os.path.join(workdir, "xapi.log"),
        "users": users or {"root": {"password": "rootpw", "role": "pool-admin"},
                           "ro": {"password": "ropw", "role": "read-only"}},
        "pool": {"uuid": str(uuidlib.uuid4()), "name_label": "test pool"},
        "hosts": hosts,
        "vms": list(vms),
    }
    cfg.update(extra)
    return cfg


class SimProcess(object):
    """One ``python -m lab.xapi`` child process."""

    def __init__(self, workdir, config):
        self.workdir = workdir
        self.config = config
        self.config_path = os.path.join(workdir, "config.json")
        self.proc = None
        self.port = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def socket(self):
        return self.config["unix_sockets"][0]

    def write_config(self):
        with open(self.config_path, "w") as f:
            json.dump(self.config, f, indent=1)

    def start(self, timeout=15):
        self.write_config()
        pf = self.config["port_file"]
        if os.path.exists(pf):
            os.unlink(pf)
        env = dict(os.environ)
        env["PYTHONPATH"] = REPO + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        out = open(os.path.join(self.workdir, "stderr.log"), "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "lab.xapi", "--config",
                                      self.config_path], cwd=REPO, env=env,
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        out.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("simulator exited: %s" % self.stderr())
            if os.path.exists(pf) and all(os.path.exists(s)
                                          for s in self.config["unix_sockets"]):
                text = open(pf).read().strip()
                if text:
                    self.port = int(text)
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("simulator did not start: %s" % self.stderr())

    def stderr(self):
        try:
            return open(os.path.join(self.workdir, "stderr.log")).read()[-3000:]
        except OSError:
            return ""

    def stop(self):
        """SIGTERM by pid, then SIGKILL if it lingers."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


@contextmanager
def serving(workdir, cfg):
    """A simulator running cfg for the length of a with block; stopped and cleaned after."""
    proc = SimProcess(workdir, cfg).start()
    try:
        yield proc
    finally:
        proc.stop()
        cleanup(workdir)


def cleanup(workdir):
    shutil.rmtree(workdir, ignore_errors=True)


def login(sim, user="root", password="rootpw", unix=False):
    """A XenAPI session of the PyPI client, over TCP or over the simulator's Unix socket."""
    import XenAPI
    if unix:
        s = XenAPI.Session("http://" + sim.socket.replace("/", "_"),
                           transport=XenAPI.UDSTransport())
    else:
        s = XenAPI.Session(sim.url)
    s.xenapi.login_with_password(user, password, "1.0", "lab-tests")
    return s


def event_from(session, classes, token, timeout):
    """``event.from`` (a Python keyword, hence getattr)."""
    return getattr(session.xenapi.event, "from")(classes, token, timeout)
