"""Following one VM over SSH: connect, read everything once, then follow Docker's events.

One Follower per followed VM, as a task on the monitor's loop (no thread of its own).

    connect (pinned host key, pool key)
      -> GET /version (negotiates the API version)     docker_version
      -> open GET /events                              (before the list: nothing is missed)
      -> GET /containers/json?all=1, GET /info         docker_ps, docker_info
      -> status "fresh"
      -> events mark containers dirty; a flush re-reads just those containers (one
         filtered request), re-renders docker_ps, and hands what changed to the Outbox

Any failure ends the session: the status turns "stale" at once (with the reason), and
"unreachable" plus a XAPI message after the grace period; the follower reconnects with
capped, jittered backoff, forever. Nothing a guest sends can grow memory without bound:
events are rate-limited (flood guard) and only counted per container, the container
table is capped, and documents are rendered within their size budget.
"""
import asyncio
import logging
import time

import asyncssh

from dom0_plugin import constants as C
from dom0_plugin import documents, ssh_transport
from dom0_plugin.errors import DockerUnavailable, HostKeyUnverified, XscError
from dom0_plugin.monitor import events_stream, model, ssh_link
from dom0_plugin.monitor import status as st
from dom0_plugin.monitor.backoff import Backoff
from dom0_plugin.monitor.containers import ContainerTable
from xsc_contract.docker_events import Convergence
from xsc_contract.rate import TokenBucket

log = logging.getLogger(__name__)

VERIFY_DELAY = 2.0      # seconds for our own writes to come back through event.from
FETCH_BURST = 3         # container reads of one VM that may go back to back


class Follower(object):
    """Keeps the documents and the status key of one VM true."""

    def __init__(self, hub, view):
        self.hub = hub
        self.cfg = hub.cfg
        self.view = view
        self.uuid = view.uuid
        self.table = ContainerTable(self.cfg.max_containers)
        self.link = None
        self.fresh = False
        self.task = None
        self.stopping = False
        # what XAPI holds (or will, once the Outbox is written): key -> digest
        self.written = dict(view.digests)
        self.status = None if model.is_copy(view) else model.status_of(view)
        self.status_text = view.status_text
        self.down_since = None
        self.reason = ""
        self.message_posted = self.status is not None and self.status.state == st.UNREACHABLE
        self.connected_at = None
        self.connects = 0
        self.timings = None     # (connect seconds, resync seconds) of the last session
        # work for the flush loop
        self.wake = None
        self.poke = None
        self.dirty_ids = set()
        self.dirty_all = False
        self.converge = Convergence()   # containers read until the list shows their event
        self.ps_shown = None    # (entries in docker_ps, containers) when not all fit
        self.info_dirty = False
        self.version_dirty = False
        self.last_fetch = 0.0
        self.fetch_pause = self.cfg.fetch_interval
        self.fetches = TokenBucket(self.fetch_pause, FETCH_BURST, time.monotonic())
        self.last_info = 0.0
        self.last_full = 0.0
        self.events_seen = 0
        self.events_throttled = 0
        self.restart_reason = None
        self.wiped = None       # the copied status we already asked to remove
        self._grace_handle = None
        self._verify_handle = None
        self._info_handle = None

    # ------------------------------------------------------------ lifecycle (loop)
    def start(self):
        self.wake = asyncio.Event()
        self.poke = asyncio.Event()
        if model.is_copy(self.view):
            self._wipe_copy()
        self.task = asyncio.ensure_future(self._supervise())

    def stop(self):
        """Stop following (the VM left this host, halted or was deregistered)."""
        self.stopping = True
        for handle in (self._grace_handle, self._verify_handle, self._info_handle):
            if handle is not None:
                handle.cancel()
        if self.task is not None:
            self.task.cancel()
        self._close_link()
        self.hub.outbox.discard(self.uuid)

    def on_view(self, view):
        """The VM's record changed in XAPI."""
        old, self.view = self.view, view
        if model.is_copy(view):
            self._wipe_copy()
            return
        if view.domid != old.domid:
            self.restart("the VM's domain changed (rebooted or migrated)")
        else:
            self._settings_changed(old, view)
        if self._differs(view):
            self._schedule_verify()

    def _settings_changed(self, old, view):
        """Reconnect when the SSH login settings (pinned key, user) changed."""
        if (view.hostkey, view.username) != (old.hostkey, old.username):
            if self.link is None or view.hostkey != ssh_transport.format_pin(
                    self.link.host_key) or view.username != old.username:
                self.restart("the VM's login settings changed")

    def on_addresses(self):
        """The VM's reported addresses changed."""
        addresses = self.hub.addresses_of(self.view)
        if self.link is None:
            self.poke.set()
        elif self.link.address not in addresses:
            self.restart("the VM's IP address changed")

    def restart(self, reason):
        """Drop the connection and reconnect now."""
        log.info("VM %s: reconnecting: %s", self.uuid, reason)
        self.restart_reason = reason
        self.poke.set()
        self._close_link()

    def _close_link(self):
        link, self.link = self.link, None
        if link is not None:
            link.close()

    # ------------------------------------------------------------ supervision
    async def _supervise(self):
        backoff = Backoff(self.cfg.backoff_initial, self.cfg.backoff_max)
        while not self.stopping:
            self.poke.clear()
            try:
                await self._session(backoff)
                reason = "the connection to the VM ended"
            except asyncio.CancelledError:
                raise
            except XscError as error:
                reason = error.message()
            except (asyncssh.Error, OSError, EOFError, asyncio.TimeoutError) as error:
                reason = "connection lost: %s" % (str(error) or type(error).__name__)
            except Exception as error:  # a bug must not end the following of a VM
                log.exception("VM %s: unexpected error while following", self.uuid)
                reason = "internal error (%s): see %s" % (type(error).__name__,
                                                          self.cfg.log_file)
            self._close_link()
            if self.stopping:
                return
            if self.restart_reason:
                reason, self.restart_reason = self.restart_reason, None
            self._lost(reason)
            delay = 0.0 if self.poke.is_set() else backoff.next()
            log.info("VM %s: %s; retrying in %.1f s", self.uuid, reason, delay)
            try:
                await asyncio.wait_for(self.poke.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def _session(self, backoff):
        view = self.view
        began = time.monotonic()
        pinned = ssh_transport.parse_pin(view.hostkey)
        if pinned is None:
            # never pinned silently, never a credential toward an unverified key: the
            # admin runs `prepare` (the follower restarts when the pin appears)
            raise HostKeyUnverified(self.uuid, "not checked: the VM was registered "
                                    "without prepare")
        key = await self.hub.client_key()
        try:
            conn, address, host_key = await ssh_link.connect(
                self.uuid, self.hub.addresses_of(view), view.username, key, pinned, self.cfg)
        except XscError as error:
            if error.code == C.ERR_AUTH_FAILED:
                self.hub.key_refused()
            raise
        link = ssh_link.VmLink(conn, self.uuid, view.username, address, host_key,
                               self.hub.executor, self.cfg)
        self.link = link
        connected = time.monotonic()
        tasks = []
        try:
            version = await link.call(lambda d: d.version())
            stream = await link.open_events()
            self.dirty_ids.clear()
            self.dirty_all = self.info_dirty = self.version_dirty = False
            self.converge = Convergence()
            self.written = dict(self.view.digests)
            docs = await link.call(lambda d: self._resync(d, version))
            now = time.monotonic()
            self.last_full = self.last_info = self.last_fetch = now
            self._publish(docs)
            self.connects += 1
            self.connected_at = time.time()
            self._fresh()
            backoff.reset()
            self.timings = (connected - began, time.monotonic() - connected)
            log.info("VM %s: following %d containers at %s (connected in %.2f s, read in "
                     "%.2f s)", self.uuid, len(self.table), address, *self.timings)
            tasks = [asyncio.ensure_future(self._read_events(stream)),
                     asyncio.ensure_future(self._flush_loop(link)),
                     asyncio.ensure_future(link.wait_closed())]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()   # raises the error that ended it
            raise DockerUnavailable(self.uuid, "the SSH connection closed")
        finally:
            for task in tasks:
                task.cancel()
            self.fresh = False

    # ------------------------------------------------------------ reading (worker threads)
    def _resync(self, client, version):
        """Everything, once: run in a worker thread on one request channel."""
        self.table.replace(client.ps(all=True))
        info = client.info()
        return {C.KEY_DOCKER_PS: self._render_ps(),
                C.KEY_DOCKER_INFO: documents.render_info(info),
                C.KEY_DOCKER_VERSION: documents.render_version(version)}

    def _refresh(self, client, ids, full, info, version):
        docs = {}
        if full:
            self.table.replace(client.ps(all=True))
        elif ids:
            self.table.update(ids, client.ps(all=True, filters={"id": sorted(ids)}))
        if full or ids:
            docs[C.KEY_DOCKER_PS] = self._render_ps()
        if info:
            docs[C.KEY_DOCKER_INFO] = documents.render_info(client.info())
        if version:
            docs[C.KEY_DOCKER_VERSION] = documents.render_version(client.version())
        return docs

    def _render_ps(self):
        doc = documents.render_ps_document(self.table.ordered())
        total = doc.total + self.table.dropped
        self.ps_shown = (doc.shown, total) if doc.shown < total else None
        if doc.shown < doc.total or doc.dropped_fields or self.table.dropped:
            log.info("VM %s: docker_ps shows %d of %d containers (%d over the memory cap), "
                     "without %s", self.uuid, doc.shown, doc.total + self.table.dropped,
                     self.table.dropped, ", ".join(doc.dropped_fields) or "no field")
        return doc.xml

    # ------------------------------------------------------------ events (loop)
    async def _read_events(self, stream):
        rate, burst = float(self.cfg.event_rate), float(self.cfg.event_burst)
        tokens, last = burst, time.monotonic()
        while True:
            event = await stream.next()
            if event is None:
                raise DockerUnavailable(self.uuid, "Docker's event stream ended (was the "
                                                   "Docker Engine stopped or restarted?)")
            self.events_seen += 1
            now = time.monotonic()
            tokens = min(burst, tokens + (now - last) * rate)
            last = now
            if tokens < 1.0:
                # a flood: stop reading for a moment; SSH flow control holds the rest in
                # the guest, and the next flush re-reads everything anyway
                self.events_throttled += 1
                self.dirty_all = True
                self.wake.set()
                await asyncio.sleep((1.0 - tokens) / rate)
                tokens, last = 1.0, time.monotonic()
            tokens -= 1.0
            container_id, action, ps, info = events_stream.describe(event)
            if ps:
                if container_id is not None:
                    self.converge.event(container_id, action)
                if container_id is None:
                    self.dirty_all = True
                elif not self.dirty_all:
                    self.dirty_ids.add(container_id)
                    if len(self.dirty_ids) > self.cfg.incremental_limit:
                        self.dirty_all = True
                if self.dirty_all:
                    self.dirty_ids.clear()
            if info:
                self.info_dirty = True
            if ps or info:
                self.wake.set()

    async def _flush_loop(self, link):
        while True:
            try:
                await asyncio.wait_for(self.wake.wait(), self._next_duty())
            except asyncio.TimeoutError:
                pass
            self.wake.clear()
            now = time.monotonic()
            self._periodic(now, link)
            again = self.converge.due(now)
            if again and not self.dirty_all:
                self.dirty_ids |= again
                if len(self.dirty_ids) > self.cfg.incremental_limit:
                    self.dirty_all = True
                    self.dirty_ids.clear()
            # docker_info (its counts change with every container event) is re-read at most
            # every info_interval, riding along with a container-list write when there is
            # one: most changes cost one key, not two
            info_due = self.info_dirty and now - self.last_info >= self.cfg.info_interval
            if not (self.dirty_ids or self.dirty_all or info_due or self.version_dirty):
                if self.info_dirty:
                    self._wake_at(self.last_info + self.cfg.info_interval)
                continue
            # a short burst of reads goes at once (a person's quick actions), sustained
            # churn is read once per fetch_pause
            await asyncio.sleep(max(self.cfg.coalesce, self.fetches.ready_at(now) - now))
            self.fetches.take(time.monotonic())
            ids, full = set(self.dirty_ids), self.dirty_all
            info = self.info_dirty and (info_due or full)
            version = self.version_dirty
            self.dirty_ids.clear()
            self.dirty_all = self.version_dirty = False
            if info:
                self.info_dirty = False
            began = time.monotonic()
            checked = self.converge.tracked() if full else ids
            marks = self.converge.marks(checked)
            docs = await link.call(
                lambda d: self._refresh(d, ids, full, info, version))
            self.last_fetch = time.monotonic()
            self.converge.observed(checked, self.table.items, self.last_fetch, marks)
            # a VM whose list is costly to read and render (thousands of containers)
            # is read less often, so that it can't take a worker for itself
            self.fetch_pause = max(self.cfg.fetch_interval, 2 * (self.last_fetch - began))
            self.fetches.interval = self.fetch_pause
            if full:
                self.last_full = self.last_fetch
            if info:
                self.last_info = self.last_fetch
            self._publish(docs)

    def _next_duty(self):
        now = time.monotonic()
        due = min(self.last_full + self.cfg.full_resync, self.last_info + self.cfg.info_refresh)
        if self.status is not None and self.status.state == st.FRESH:
            due = min(due, now + max(1.0, self.status.confirmed + self.cfg.heartbeat
                                     - time.time()))
        if self.link is not None:
            due = min(due, now + 30.0)
        again = self.converge.next_due()
        if again is not None:
            return max(0.0, min(due, again) - now)
        return max(0.05, due - now)

    def _periodic(self, now, link):
        if now - self.last_full >= self.cfg.full_resync:
            self.dirty_all = True
        if now - self.last_info >= self.cfg.info_refresh:
            self.info_dirty = True
        if (self.fresh and self.status is not None
                and time.time() - self.status.confirmed >= self.cfg.heartbeat):
            self._write_status(st.FRESH, self.status.since, "")
        link.close_idle()

    def _wake_at(self, when):
        if self._info_handle is not None:
            self._info_handle.cancel()
        self._info_handle = asyncio.get_event_loop().call_later(
            max(0.0, when - time.monotonic()), self.wake.set)

    # ------------------------------------------------------------ writing
    def _publish(self, docs):
        """Hand the documents that differ from what XAPI holds to the Outbox (and the
        status, when how many of the containers docker_ps shows changed)."""
        for key, value in docs.items():
            d = model.digest(value)
            if self.written.get(key) != d:
                self.hub.outbox.set_key(self.uuid, self.view.ref, key, value)
                self.written[key] = d
        if self.status is not None and self.status.shown != self.ps_shown:
            self._write_status(self.status.state, self.status.since, self.status.reason)

    def _write_status(self, state, since, reason):
        status = st.make(state, since, time.time(), self.uuid, self.hub.host_uuid, reason,
                         self.ps_shown)
        self.status = status
        self.status_text = st.encode(status)
        self.hub.outbox.set_key(self.uuid, self.view.ref, C.KEY_STATUS, self.status_text)

    def _fresh(self):
        self.fresh = True
        self.down_since = None
        self.reason = ""
        if self._grace_handle is not None:
            self._grace_handle.cancel()
            self._grace_handle = None
        self._write_status(st.FRESH, time.time(), "")
        if self.message_posted:
            self.hub.outbox.message(self.uuid, self.view.ref, "clear",
                                    C.MESSAGE_CANNOT_MONITOR)
            self.message_posted = False

    def _lost(self, reason):
        """Contact lost (or not made): say so at once; after the grace period, loudly."""
        self.fresh = False
        now = time.time()
        state = st.STALE
        if self.down_since is None:
            earlier = self.status
            if earlier is not None and earlier.vm == self.uuid and earlier.state != st.FRESH:
                # a failure that began before this monitor (re)started: same episode
                self.down_since, state = earlier.since, earlier.state
            else:
                self.down_since = now
        elif self.status is not None:
            state = self.status.state
        if (self.status is None or self.status.state != state or self.reason != reason
                or self.status.vm != self.uuid):
            self.reason = reason
            self._write_status(state, self.down_since, reason)
        if state != st.UNREACHABLE and self._grace_handle is None:
            delay = max(0.0, self.down_since + self.cfg.grace_seconds - now)
            self._grace_handle = asyncio.get_event_loop().call_later(delay, self._grace_over)

    def _grace_over(self):
        self._grace_handle = None
        if self.fresh or self.stopping or self.down_since is None:
            return
        self._write_status(st.UNREACHABLE, self.down_since, self.reason)
        if len(self.table):
            # the list is only the last one known: say so in every entry, so that no
            # tool offers Stop or Restart for containers nobody can see
            doc = documents.render_ps_document(
                self.table.ordered(), status=documents.unknown_status(self.down_since))
            self._publish({C.KEY_DOCKER_PS: doc.xml})
        if not self.message_posted:
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.down_since))
            body = ("Cannot monitor the containers of VM %s (%s) since %s: %s. The container "
                    "list shown for it is the last one known. This message is removed when "
                    "monitoring recovers." % (self.view.name, self.uuid, when, self.reason))
            self.hub.outbox.message(self.uuid, self.view.ref, "post",
                                    C.MESSAGE_CANNOT_MONITOR, body)
            self.message_posted = True
        log.warning("VM %s: unreachable for %d s: %s", self.uuid,
                    int(time.time() - self.down_since), self.reason)

    # ------------------------------------------------------------ someone else wrote
    def _differs(self, view):
        docs = any(view.digests.get(k) != self.written.get(k) for k in C.DOCUMENT_KEYS)
        return docs or view.status_text != self.status_text

    def _schedule_verify(self):
        if self._verify_handle is None:
            self._verify_handle = asyncio.get_event_loop().call_later(VERIFY_DELAY,
                                                                      self._verify)

    def _verify(self):
        """A key differs from what we wrote, once our own writes have come back:
        someone else wrote it (a copy, the plugin, a cleanup). Write ours again."""
        self._verify_handle = None
        if self.stopping:
            return
        pending = self.hub.outbox.pending_keys(self.uuid)
        if pending:
            self._schedule_verify()
            return
        view = self.view
        for key in C.DOCUMENT_KEYS:
            if view.digests.get(key) != self.written.get(key):
                log.info("VM %s: %s was changed by someone else: rewriting it", self.uuid, key)
                self.written[key] = view.digests.get(key)
                self._force(key)
        if view.status_text != self.status_text and self.status is not None:
            self._write_status(self.status.state, self.status.since, self.status.reason)

    def _force(self, key):
        if self.link is None or not self.fresh:
            return      # re-read when connected again (resync compares with XAPI)
        if key == C.KEY_DOCKER_PS:
            self.dirty_all = True
        elif key == C.KEY_DOCKER_INFO:
            self.info_dirty = True
            self.last_info = -self.cfg.info_interval
        else:
            self.version_dirty = True
        self.wake.set()

    def _wipe_copy(self):
        """The documents were copied from another VM (clone, snapshot): remove them now."""
        other = model.status_of(self.view)
        if self.view.status_text == self.wiped:
            return
        self.wiped = self.view.status_text
        log.info("VM %s carries documents written for VM %s: wiping them", self.uuid,
                 other.vm if other else "?")
        for key in C.DOCUMENT_KEYS:
            if key in self.view.digests:
                self.hub.outbox.set_key(self.uuid, self.view.ref, key, None)
        self.hub.outbox.set_key(self.uuid, self.view.ref, C.KEY_STATUS, None)
        self.written = {}
        self.status = None
        self.status_text = None
        if self.fresh:
            self._fresh()
            self._force(C.KEY_DOCKER_PS)
            self._force(C.KEY_DOCKER_INFO)
            self._force(C.KEY_DOCKER_VERSION)

    # ------------------------------------------------------------ for the socket
    def describe(self):
        status = self.status
        return {"vm": self.uuid, "name": self.view.name, "fresh": self.fresh,
                "state": status.state if status else None,
                "since": status.since if status else None,
                "reason": self.reason, "address": self.link.address if self.link else None,
                "containers": len(self.table), "connects": self.connects,
                "events": self.events_seen, "throttled": self.events_throttled,
                "timings": self.timings,
                "request_channels": self.link.request_channels() if self.link else 0}
