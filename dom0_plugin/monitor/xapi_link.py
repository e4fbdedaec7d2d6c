"""The monitor's XAPI side: a fixed handful of threads, whatever the number of VMs.

- EventWatcher (one thread): ``event.from`` on vm, vm_guest_metrics and pool; turns each
  snapshot into the small views of model.py and hands them to the event loop. On any
  failure (xapi restarted: session invalid, token lost) it logs in again and starts from
  an empty token, which brings back every object: the loop then rebuilds its whole view.
- Outbox + Writer threads: single-key other_config updates (``remove_from`` +
  ``add_to``, never a whole-map rewrite) and XAPI messages. Changes of one VM are
  coalesced (the latest value of a key wins) and written in order, at most one batch per
  VM every ``write_interval`` seconds; VMs are spread over the writers by uuid.
"""
import collections
import logging
import threading
import time
import xmlrpc.client
import zlib

from dom0_plugin import constants as C
from dom0_plugin import xapi_vm
from dom0_plugin.monitor import model
from dom0_plugin.monitor.backoff import Backoff
from xsc_contract.rate import TokenBucket

log = logging.getLogger(__name__)

EVENT_CLASSES = ["vm", "vm_guest_metrics", "pool"]
EVENT_TIMEOUT = 30.0
MESSAGE_PRIORITY = 3
EPOCH = xmlrpc.client.DateTime("19700101T00:00:00Z")
# Failures after which a write is retried on a new session.
_RECONNECT_CODES = ("SESSION_INVALID", "HOST_IS_SLAVE", "HOST_STILL_BOOTING")
_GONE_CODES = ("HANDLE_INVALID", "UUID_INVALID")
MAX_WRITE_TRIES = 5


class XapiConnector(object):
    """Makes logged-in sessions to the local xapi (dom0's Unix socket, as root)."""

    def __init__(self, socket_path=""):
        self.socket_path = socket_path

    def login(self):
        import XenAPI
        if self.socket_path:
            # XenAPI turns every '_' of the host part into '/' to find the socket
            session = XenAPI.Session("http://" + self.socket_path.replace("/", "_"),
                                     transport=XenAPI.UDSTransport())
        else:
            session = XenAPI.xapi_local()
        session.xenapi.login_with_password("root", "", "1.0", "xscontainer-monitor")
        return session


def logout(session):
    try:
        session.xenapi.session.logout()
    except Exception:  # the session may already be gone with xapi
        pass


Update = collections.namedtuple("Update", "full host_ref vms metrics pools")
Update.__doc__ = """One batch of XAPI changes for the loop. ``vms``: [(ref, VmView or None
for deleted)]; ``metrics``: [(ref, [addresses] or None)]; ``pools``: [(ref, master ref)];
``full``: the batch holds every object (a new session): forget all others."""


class EventWatcher(threading.Thread):
    """Follows ``event.from`` and calls ``deliver(Update)`` / ``lost(reason)``
    (from this thread: the receiver hands them over to its loop)."""

    def __init__(self, connector, host_uuid, deliver, lost):
        threading.Thread.__init__(self, name="xapi-events", daemon=True)
        self.connector = connector
        self.host_uuid = host_uuid
        self.deliver = deliver
        self.lost = lost
        self.stopping = threading.Event()
        self.connected = False
        self.sessions = 0

    def run(self):
        backoff = Backoff(0.5, 5.0)
        while not self.stopping.is_set():
            session = None
            try:
                session = self.connector.login()
                self.sessions += 1
                host_ref = session.xenapi.host.get_by_uuid(self.host_uuid)
                self._follow(session, host_ref, backoff)
            except Exception as error:  # xapi down or restarted: start over
                if self.stopping.is_set():
                    break
                reason = _describe(error)
                if self.connected:
                    log.warning("lost XAPI event stream: %s", reason)
                else:
                    log.info("cannot follow XAPI events yet: %s", reason)
                self.connected = False
                self.lost(reason)
            finally:
                if session is not None:
                    logout(session)
            self.stopping.wait(backoff.next())

    def _follow(self, session, host_ref, backoff):
        token = ""
        full = True
        call = getattr(session.xenapi.event, "from")
        while not self.stopping.is_set():
            result = call(EVENT_CLASSES, token, EVENT_TIMEOUT)
            token = result["token"]
            update = self._convert(result.get("events") or [], full, host_ref)
            if full:
                log.info("following XAPI events (%d VMs known)", len(update.vms))
                self.connected = True
                backoff.reset()
            if full or update.vms or update.metrics or update.pools:
                self.deliver(update)
            full = False

    @staticmethod
    def _convert(events, full, host_ref):
        vms = collections.OrderedDict()
        metrics = collections.OrderedDict()
        pools = collections.OrderedDict()
        for event in events:
            cls, ref, op = event.get("class"), event.get("ref"), event.get("operation")
            snapshot = event.get("snapshot") if op != "del" else None
            if cls == "vm":
                vms[ref] = model.view_of(ref, snapshot) if snapshot else None
            elif cls == "vm_guest_metrics":
                metrics[ref] = (model.addresses(snapshot.get("networks"))
                                if snapshot else None)
            elif cls == "pool":
                pools[ref] = snapshot.get("master") if snapshot else None
        return Update(full, host_ref, list(vms.items()), list(metrics.items()),
                      list(pools.items()))


def _describe(error):
    details = getattr(error, "details", None)
    if details:
        return " ".join(str(d) for d in details)[:300]
    return ("%s: %s" % (type(error).__name__, error))[:300]


class Batch(object):
    """Pending changes of one VM: key -> value (None: remove), then message actions."""

    def __init__(self, ref):
        self.ref = ref
        self.keys = collections.OrderedDict()
        self.messages = []      # ("post", name, body) or ("clear", name)
        self.tries = 0

    def empty(self):
        return not self.keys and not self.messages


class WriteStats(object):
    """Counters of what was written (read by the benchmark through the monitor socket)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.batches = 0
        self.calls = 0
        self.keys = 0
        self.failures = 0
        self.per_vm = collections.Counter()

    def add(self, uuid, keys, calls):
        with self.lock:
            self.batches += 1
            self.keys += keys
            self.calls += calls
            self.per_vm[uuid] += 1

    def snapshot(self):
        with self.lock:
            return {"batches": self.batches, "calls": self.calls, "keys": self.keys,
                    "failures": self.failures,
                    "max_batches_per_vm": max(self.per_vm.values()) if self.per_vm else 0,
                    "vms_written": len(self.per_vm)}


class Outbox(object):
    """The writes waiting for XAPI, per VM, shared by the loop (producer) and the
    writer threads (consumers)."""

    def __init__(self, shards, interval, burst=1):
        self.shards = max(1, shards)
        self.interval = interval
        self.burst = burst
        self.cond = threading.Condition()
        self.pending = [collections.OrderedDict() for _ in range(self.shards)]
        # per VM: a short burst of writes goes at once (a person clicking stop, then
        # start), sustained churn is held to one write per interval
        self.buckets = {}
        self.closed = False

    def _shard(self, uuid):
        return zlib.crc32(uuid.encode("ascii", "replace")) % self.shards

    def _batch(self, uuid, ref):
        pending = self.pending[self._shard(uuid)]
        batch = pending.get(uuid)
        if batch is None:
            batch = pending[uuid] = Batch(ref)
        batch.ref = ref
        return batch

    def set_key(self, uuid, ref, key, value):
        """Write (or with value None, remove) one other_config key of the VM."""
        with self.cond:
            batch = self._batch(uuid, ref)
            batch.keys.pop(key, None)   # re-insert: the order of writes follows the calls
            batch.keys[key] = value
            self.cond.notify_all()

    def message(self, uuid, ref, action, name, body=""):
        with self.cond:
            batch = self._batch(uuid, ref)
            batch.messages = [m for m in batch.messages if m[1] != name]
            batch.messages.append((action, name, body))
            self.cond.notify_all()

    def discard(self, uuid):
        """Forget what is pending for the VM (another host now owns it)."""
        with self.cond:
            self.pending[self._shard(uuid)].pop(uuid, None)

    def pending_keys(self, uuid):
        with self.cond:
            batch = self.pending[self._shard(uuid)].get(uuid)
            return set(batch.keys) if batch else set()

    def take(self, shard, timeout=1.0):
        """The next (uuid, Batch) of this shard that may be written now, or None."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.closed:
                now = time.monotonic()
                soonest = deadline
                for uuid, batch in self.pending[shard].items():
                    bucket = self.buckets.get(uuid)
                    if bucket is None:
                        bucket = self.buckets[uuid] = TokenBucket(self.interval,
                                                                  self.burst, now)
                    if bucket.take(now):
                        del self.pending[shard][uuid]
                        return uuid, batch
                    soonest = min(soonest, bucket.ready_at(now))
                if now >= deadline:
                    return None
                self.cond.wait(max(0.001, soonest - now))
            return None

    def put_back(self, uuid, batch):
        """A batch that could not be written: keep what no newer change replaced."""
        with self.cond:
            pending = self.pending[self._shard(uuid)]
            newer = pending.get(uuid)
            if newer is not None:
                for key, value in batch.keys.items():
                    if key not in newer.keys:
                        newer.keys[key] = value
                        newer.keys.move_to_end(key, last=False)
                names = set(m[1] for m in newer.messages)
                newer.messages[:0] = [m for m in batch.messages if m[1] not in names]
            else:
                pending[uuid] = batch
            self.cond.notify_all()

    def forget_vm_timers(self, live_uuids):
        with self.cond:
            now = time.monotonic()
            for uuid in list(self.buckets):
                if uuid not in live_uuids or self.buckets[uuid].full(now):
                    del self.buckets[uuid]

    def size(self):
        with self.cond:
            return sum(len(p) for p in self.pending)

    def close(self):
        with self.cond:
            self.closed = True
            self.cond.notify_all()


class Writer(threading.Thread):
    """Writes one shard of the Outbox to XAPI with its own session."""

    def __init__(self, outbox, shard, connector, stats):
        threading.Thread.__init__(self, name="xapi-writer-%d" % shard, daemon=True)
        self.outbox = outbox
        self.shard = shard
        self.connector = connector
        self.stats = stats
        self.session = None
        self.backoff = Backoff(0.5, 5.0)
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            item = self.outbox.take(self.shard)
            if item is None:
                continue
            uuid, batch = item
            try:
                self._write(uuid, batch)
                self.backoff.reset()
            except Exception as error:
                self._failed(uuid, batch, error)

    def _write(self, uuid, batch):
        if self.session is None:
            self.session = self.connector.login()
        calls = 0
        keys = 0
        while batch.keys:
            key, value = next(iter(batch.keys.items()))
            if value is None:
                xapi_vm.remove_key(self.session, batch.ref, key)
                calls += 1
            else:
                xapi_vm.set_key(self.session, batch.ref, key, value)
                calls += 2
            keys += 1
            del batch.keys[key]
        while batch.messages:
            action, name, body = batch.messages[0]
            if action == "post":
                self.session.xenapi.message.create(name, str(MESSAGE_PRIORITY), "VM", uuid,
                                                   body)
                calls += 1
                log.info("VM %s: posted message %s", uuid, name)
            else:
                calls += clear_messages(self.session, uuid, name)
            batch.messages.pop(0)
        self.stats.add(uuid, keys, calls)

    def _failed(self, uuid, batch, error):
        code = xapi_vm.failure_code(error)
        with self.stats.lock:
            self.stats.failures += 1
        if code in _GONE_CODES:
            log.info("VM %s is gone: dropping its pending writes", uuid)
            return
        batch.tries += 1
        reconnect = code in _RECONNECT_CODES or code is None
        if reconnect:
            if self.session is not None:
                logout(self.session)
            self.session = None
        if batch.tries > MAX_WRITE_TRIES and not reconnect:
            log.error("VM %s: giving up a write after %d tries: %s", uuid, batch.tries,
                      _describe(error))
            return
        log.warning("VM %s: XAPI write failed (%s); retrying", uuid, _describe(error))
        self.outbox.put_back(uuid, batch)
        self.stopping.wait(self.backoff.next())


def clear_messages(session, uuid, name):
    """Destroy the messages called ``name`` on the VM; returns the number of calls made."""
    calls = 1
    records = session.xenapi.message.get("VM", uuid, EPOCH)
    for ref, rec in records.items():
        if rec.get("name") == name:
            try:
                session.xenapi.message.destroy(ref)
            except Exception as error:
                if xapi_vm.failure_code(error) not in _GONE_CODES:
                    raise
            calls += 1
            log.info("VM %s: removed message %s", uuid, name)
    return calls


def _read_secret(session):
    pool_ref = session.xenapi.pool.get_all()[0]
    secret_uuid = session.xenapi.pool.get_other_config(pool_ref).get(C.KEY_POOL_SSH_SECRET)
    if not secret_uuid:
        return None
    try:
        return session.xenapi.secret.get_value(session.xenapi.secret.get_by_uuid(secret_uuid))
    except Exception as error:
        if xapi_vm.failure_code(error) not in _GONE_CODES:
            raise
        return None


def read_pool_key(session):
    """The pool's SSH private key (PEM text) from its XAPI secret; created when missing."""
    pem = _read_secret(session)
    if not pem:
        # no key yet (no VM enrolled through the plugin so far): make it the plugin's way
        from dom0_plugin import pool_key
        pool_key.private_key(session)
        pem = _read_secret(session)
    if not pem:
        raise RuntimeError("the pool's SSH key cannot be read from XAPI")
    return pem
