"""Real parts for the guest agent tests: the lab's xenstored as a subprocess (the test
plays the toolstack), private Docker Engines on temp sockets, the agent as a subprocess
started exactly as the lab and the systemd unit start it. Everything is stopped by pid,
unmounted and removed at the end."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from tests import prereq
from xsc_contract import report_schema as S
from xsc_contract.xenstore import Client
from lab import xs as lab_xs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOMID = 7
VM_UUID = "0a1b2c3d-0000-4000-8000-000000000007"


def wait_for(predicate, timeout=20.0, interval=0.05, what="a condition"):
    """Poll ``predicate`` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as error:   # not there yet: keep the reason for the message
            last_error = error
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last error: %r)" % (what, last_error))


# --- xenstored -------------------------------------------------------------------------------

class Xenstored(object):
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="xsa", dir="/tmp")
        self.dom0_socket = os.path.join(self.dir, "d0")
        self.guest_dir = os.path.join(self.dir, "g")
        self.log_path = os.path.join(self.dir, "xenstored.log")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lab.xenstored", "--dom0-socket", self.dom0_socket,
             "--guest-socket-dir", self.guest_dir, "--log", self.log_path],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_for(lambda: self.answers(self.dom0_socket, "/"), 30,
                 what="xenstored to answer")

    def guest_socket(self, domid):
        return os.path.join(self.guest_dir, str(domid))

    def client(self, domid=0, timeout=10.0):
        path = self.dom0_socket if domid == 0 else self.guest_socket(domid)
        return Client(path, timeout=timeout)

    def create_domain(self, domid=DOMID, vm_uuid=VM_UUID):
        lab_xs.create_domain(self.dom0_socket, domid, vm_uuid, "vm%d" % domid)
        wait_for(lambda: self.answers(self.guest_socket(domid), "domid"), 30,
                 what="xenstored to answer domain %d" % domid)

    @staticmethod
    def answers(socket_path, node):
        """xenstored answers a read of ``node`` on ``socket_path`` (not just: the socket
        file exists)."""
        with Client(socket_path, timeout=5.0) as xs:
            xs.read(node)
            return True

    def tool(self, *args):
        env = dict(os.environ, XENSTORED_PATH=self.dom0_socket)
        return subprocess.run(list(args), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=30)

    def log_text(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def xsd():
    daemon = Xenstored()
    try:
        yield daemon
        assert daemon.proc.poll() is None, "xenstored died:\n" + daemon.log_text()[-3000:]
        assert "internal error" not in daemon.log_text(), daemon.log_text()[-3000:]
    finally:
        daemon.stop()


@pytest.fixture
def domain(xsd):
    """A guest domain (domid 7) whose tree was built by the 'toolstack'."""
    xsd.create_domain()
    return DOMID


@pytest.fixture
def dom0(xsd):
    with xsd.client(0) as xs:
        yield xs


# --- Docker Engine ---------------------------------------------------------------------------

from tests.engine import ENGINES, IMAGE, Engine  # noqa: E402,F401 (IMAGE: tests)
from tests.engine import missing_prerequisite as _engine_prerequisites  # noqa: E402


@pytest.fixture(scope="session", params=ENGINES)
def engine(request):
    """One engine per kind (ENGINES) for the tests that leave it running; they remove
    their containers."""
    reason = _engine_prerequisites()
    if reason:
        prereq.missing(reason)
    eng = Engine(prefix="xsad-", suite=request.param)
    try:
        eng.start()
        yield eng
    finally:
        eng.destroy()


@pytest.fixture
def own_engine():
    """An engine a test may stop, restart or start late (created, not started)."""
    reason = _engine_prerequisites()
    if reason:
        prereq.missing(reason)
    eng = Engine(prefix="xsad-")
    try:
        yield eng
    finally:
        eng.destroy()


@pytest.fixture
def clean_engine(engine):
    yield engine
    ids = engine.docker("ps", "-aq", check=False).split()
    if ids:
        engine.docker("rm", "-f", *ids, check=False)


# --- the agent -------------------------------------------------------------------------------

class AgentProcess(object):
    def __init__(self, xsd, domid, docker_url, workdir, allow=(), resync=60, retry_max=2,
                 extra_config=""):
        self.xsd = xsd
        self.domid = domid
        self.docker_url = docker_url
        self.config = os.path.join(workdir, "agent-%d.conf" % domid)
        self.log_path = os.path.join(workdir, "agent-%d.log" % domid)
        with open(self.config, "w") as f:
            f.write("[agent]\nresync_seconds = %s\nretry_max_seconds = %s\n%s\n"
                    "[requests]\nallow = %s\n" % (resync, retry_max, extra_config,
                                                  " ".join(allow)))
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "guest_agent", "--xenbus",
             self.xsd.guest_socket(self.domid), "--docker", self.docker_url,
             "--config", self.config, "--log-level", "debug"],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        if self.alive():
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        rc = self.proc.returncode if self.proc is not None else None
        self.proc = None
        return rc

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


@pytest.fixture
def start_agent(xsd, tmp_path):
    """start_agent(docker_url, allow=(), ...) -> a running AgentProcess (stopped at the
    end; a traceback in its log fails the test)."""
    started = []

    def start(docker_url, domid=DOMID, **kwargs):
        agent = AgentProcess(xsd, domid, docker_url, str(tmp_path), **kwargs).start()
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()
        # shown by pytest when the test failed
        print("---- agent log (domain %d) ----\n%s" % (agent.domid, "\n".join(
            line for line in agent.log_text().splitlines()[-60:]
            if "urllib3" not in line and "docker.utils" not in line)))
    for agent in started:
        assert "Traceback" not in agent.log_text(), agent.log_text()[-4000:]


def report_state(xs, domid=DOMID):
    """The decoded state node, or None."""
    lay = S.layout(domid)
    try:
        return S.decode_state(xs.read(lay.state))
    except Exception:
        return None

