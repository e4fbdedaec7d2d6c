"""Where the lab keeps things, and the record of everything it made (so `down` can undo it).

`DIR/lab.json` is the public description other tools read (names fixed by the lab issue).
`DIR/runtime.json` records each resource *before* it is created, so `lab down` cleans up
even after `lab up` was killed half-way.
"""
import fcntl
import hashlib
import json
import os
import tempfile
from contextlib import contextmanager

LAB_JSON = "lab.json"
RUNTIME_JSON = "runtime.json"


class Paths(object):
    """All the paths of one lab, derived from its state directory."""

    def __init__(self, state_dir):
        self.state = os.path.realpath(state_dir)
        self.lab_id = hashlib.sha1(self.state.encode()).hexdigest()[:6]
        # Sockets live in a short, underscore-free, world-traversable directory:
        # XenAPI's Unix transport turns '_' into '/', and guest users must reach their socket.
        self.run = "/run/xscng-%s" % self.lab_id
        self.logs = os.path.join(self.state, "logs")
        self.lab_json = os.path.join(self.state, LAB_JSON)
        self.runtime_json = os.path.join(self.state, RUNTIME_JSON)
        self.xapi_dir = os.path.join(self.state, "xapi")
        self.xapi_socket = os.path.join(self.run, "xapi.sock")
        self.xenstored_socket = os.path.join(self.run, "xenstored.sock")
        self.xenbus_dir = os.path.join(self.run, "xenbus")
        self.dom0_dir = os.path.join(self.state, "dom0")
        self.image_tar = os.path.join(self.state, "image.tar")

    def host_dir(self, name):
        return os.path.join(self.state, "hosts", name)

    def host_socket(self, index):
        return os.path.join(self.run, "xapi-h%d.sock" % index)

    def vm_state(self, name):
        return os.path.join(self.state, "vms", name)

    def vm_run(self, name):
        return os.path.join(self.run, "vms", name)

    def log(self, name):
        return os.path.join(self.logs, name + ".log")


def write_json(path, data):
    """Atomically replace path with data."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def read_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        if default is not None:
            return default
        raise


@contextmanager
def locked(paths):
    """Serialise changes to one lab's records (hooks for several VMs may run at once)."""
    os.makedirs(paths.state, exist_ok=True)
    with open(os.path.join(paths.state, ".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class Runtime(object):
    """The record of what this lab made: processes, namespaces, users, mounts, dirs."""

    def __init__(self, paths):
        self.paths = paths

    def load(self):
        return read_json(self.paths.runtime_json, default={})

    def update(self, fn):
        """Apply fn(record) under the lab lock and save; returns fn's result."""
        with locked(self.paths):
            rec = self.load()
            result = fn(rec)
            write_json(self.paths.runtime_json, rec)
            return result

    def note(self, kind, key, value=True):
        def apply(rec):
            rec.setdefault(kind, {})[key] = value
        self.update(apply)

    def forget(self, kind, key):
        def apply(rec):
            rec.get(kind, {}).pop(key, None)
        self.update(apply)
