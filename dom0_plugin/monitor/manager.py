"""The monitor's view of the pool and the followers it runs (on the event loop).

XAPI changes arrive as xapi_link.Update batches; for every VM touched the manager decides
who owns it (model.py) and starts, updates or stops this host's Follower; on the pool
coordinator it also removes documents nobody follows any more.
"""
import asyncio
import logging
import time

from dom0_plugin import constants as C
from dom0_plugin.monitor import model, ssh_link, xapi_link
from dom0_plugin.monitor import status as st
from dom0_plugin.monitor.agent_follower import AgentFollower, XenstoreHub
from dom0_plugin.monitor.follower import Follower

log = logging.getLogger(__name__)

KEY_RETRY = 30.0          # seconds between two reads of the pool key after a refusal
CLEANUP_REPEAT = 5.0      # do not ask twice within this time to clean the same VM


class Manager(object):
    """Owns the followers of this host; the ``hub`` the followers see."""

    def __init__(self, cfg, host_uuid, connector, executor, outbox, stats):
        self.cfg = cfg
        self.host_uuid = host_uuid
        self.connector = connector
        self.executor = executor
        self.outbox = outbox
        self.stats = stats
        self.host_ref = None
        self.master = None
        self.views = {}           # VM ref -> VmView
        self.metrics = {}         # VM_guest_metrics ref -> [addresses]
        self.followers = {}       # VM uuid -> Follower
        self.xapi_connected = False
        self.xapi_reason = "not connected yet"
        self.updates = 0
        self._cleaned = {}        # VM uuid -> (time, status_text) of the last cleanup
        self._key = None
        self._key_read = 0.0
        self._key_refused = False
        self._key_lock = None
        self._xenstore = None

    # ------------------------------------------------------------ XAPI changes
    def on_update(self, update):
        """Apply one batch from the EventWatcher (called on the loop)."""
        self.updates += 1
        self.xapi_connected = True
        self.xapi_reason = ""
        self.host_ref = update.host_ref
        if update.full:
            self.views = {}
            self.metrics = {}
        for ref, addresses in update.metrics:
            if addresses is None:
                self.metrics.pop(ref, None)
            else:
                self.metrics[ref] = addresses
        for ref, master in update.pools:
            if master:
                self.master = master
        touched = []
        for ref, view in update.vms:
            if view is None:
                self.views.pop(ref, None)
            else:
                self.views[ref] = view
                touched.append(view)
        if update.full:
            self._reconcile_all()
        else:
            for view in touched:
                self._reconcile(view)
            for ref, view in update.vms:
                if view is None:
                    self._forget_ref(ref)
            if update.metrics:
                changed = set(ref for ref, _ in update.metrics)
                for follower in list(self.followers.values()):
                    if follower.view.guest_metrics in changed:
                        follower.on_addresses()
            if update.pools and self.is_coordinator():
                for view in list(self.views.values()):
                    self._cleanup(view)

    def on_xapi_lost(self, reason):
        self.xapi_connected = False
        self.xapi_reason = reason

    def is_coordinator(self):
        return self.host_ref is not None and self.master == self.host_ref

    def _reconcile_all(self):
        live = set()
        for view in list(self.views.values()):
            self._reconcile(view)
            live.add(view.uuid)
        for uuid in list(self.followers):
            if uuid not in live:
                self._stop(uuid, "the VM no longer exists")
        self.outbox.forget_vm_timers(live)

    def _forget_ref(self, ref):
        for uuid, follower in list(self.followers.items()):
            if follower.view.ref == ref:
                self._stop(uuid, "the VM was destroyed")

    def _reconcile(self, view):
        mine = model.followed_by(view, self.host_ref)
        follower = self.followers.get(view.uuid)
        if mine and follower is not None and type(follower) is not _follower_class(view):
            # re-registered with another transport: follow it the new way
            self._stop(view.uuid, "transport changed to %s" % view.transport[:20])
            follower = None
        if mine and follower is None:
            self._start(view)
        elif mine:
            follower.on_view(view)
        elif follower is not None:
            self._stop(view.uuid, self._why_not(view))
        self._cleanup(view)

    def _why_not(self, view):
        if not view.registered:
            return "deregistered"
        if view.power_state not in model.RUNNING_STATES:
            return "the VM is %s" % view.power_state
        return "the VM is now resident on another host"

    def _start(self, view):
        cls = _follower_class(view)
        if cls is None:
            log.info("VM %s uses an unknown transport %r: not followed", view.uuid,
                     view.transport[:20])
            return
        log.info("VM %s (%s): following (%s)", view.uuid, view.name, view.transport)
        follower = cls(self, view)
        self.followers[view.uuid] = follower
        follower.start()

    def _stop(self, uuid, why):
        follower = self.followers.pop(uuid, None)
        if follower is not None:
            log.info("VM %s: no longer followed here: %s", uuid, why)
            follower.stop()

    def _cleanup(self, view):
        """Coordinator only: remove documents that no monitor keeps true."""
        if (not self.is_coordinator() or model.followed(view) or not model.has_our_keys(view)
                or view.power_state == ""):
            return
        last = self._cleaned.get(view.uuid)
        now = time.monotonic()
        if last is not None and now - last[0] < CLEANUP_REPEAT and last[1] == view.status_text:
            return
        self._cleaned[view.uuid] = (now, view.status_text)
        log.info("VM %s (%s) is not followed (%s): removing its container documents",
                 view.uuid, view.name, "copy" if model.is_copy(view) else self._why_not(view))
        for key in C.DOCUMENT_KEYS:
            if key in view.digests:
                self.outbox.set_key(view.uuid, view.ref, key, None)
        if view.status_text is not None:
            self.outbox.set_key(view.uuid, view.ref, C.KEY_STATUS, None)
            status = model.status_of(view)
            if status is not None and status.state == st.UNREACHABLE and not model.is_copy(view):
                self.outbox.message(view.uuid, view.ref, "clear", C.MESSAGE_CANNOT_MONITOR)

    # ------------------------------------------------------------ what followers ask
    def xenstore(self):
        """The monitor's xenstore connection (started with the first agent-mode VM)."""
        if self._xenstore is None:
            self._xenstore = XenstoreHub(asyncio.get_event_loop(), self._xenstore_event)
            self._xenstore.start()
        return self._xenstore

    def _xenstore_event(self, token):
        if token is None:
            targets = [f for f in self.followers.values() if isinstance(f, AgentFollower)]
        else:
            targets = [self.followers[token]] if token in self.followers else []
        for follower in targets:
            if isinstance(follower, AgentFollower):
                follower.on_event()

    def addresses_of(self, view):
        return self.metrics.get(view.guest_metrics) or []

    async def client_key(self):
        """The pool's SSH key (read from its XAPI secret once, again after a refusal)."""
        if self._key_lock is None:
            self._key_lock = asyncio.Lock()
        async with self._key_lock:
            now = time.monotonic()
            stale = self._key_refused and now - self._key_read >= KEY_RETRY
            if self._key is None or stale:
                loop = asyncio.get_event_loop()
                pem = await loop.run_in_executor(self.executor, self._read_key)
                self._key = ssh_link.load_client_key(pem)
                self._key_read = time.monotonic()
                self._key_refused = False
            return self._key

    def _read_key(self):
        session = self.connector.login()
        try:
            return xapi_link.read_pool_key(session)
        finally:
            xapi_link.logout(session)

    def key_refused(self):
        """A VM refused the key: maybe the pool key was replaced; read it again soon."""
        self._key_refused = True

    # ------------------------------------------------------------ housekeeping
    def stop_all(self):
        for uuid in list(self.followers):
            self._stop(uuid, "the monitor is stopping")

    def mark_all_stale(self, reason):
        """On a clean stop: no VM of ours keeps saying "fresh" while nobody watches."""
        for follower in self.followers.values():
            if follower.fresh:
                follower._write_status(st.STALE, time.time(), reason)

    def describe(self):
        return {"host": self.host_uuid, "coordinator": self.is_coordinator(),
                "xapi_connected": self.xapi_connected, "xapi_reason": self.xapi_reason,
                "vms_known": len(self.views), "followed": len(self.followers),
                "fresh": sum(1 for f in self.followers.values() if f.fresh),
                "outbox": self.outbox.size(), "writes": self.stats.snapshot()}


def _follower_class(view):
    """The follower for the VM's transport (None for a transport this monitor lacks)."""
    return {C.MODE_AGENT: AgentFollower, C.MODE_SSH: Follower}.get(view.transport)

