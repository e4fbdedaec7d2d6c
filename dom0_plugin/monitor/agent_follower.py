"""Following a VM in agent mode: the guest agent's report in xenstore instead of SSH.

One XenstoreHub thread per monitor (started with the first agent-mode VM) holds one
connection to xenstored and one watch per followed VM (on the report's state node, which
the agent writes last in every batch); each event wakes that VM's AgentFollower on the
loop, which reads and checks the report (dom0_plugin.agent_transport.read_report: every
byte is hostile, every read bounded) in a worker thread, turns it into Docker's shapes and
then into the same documents, with the same status key, coalescing and write rules as
the SSH follower.

Fresh means: the agent runs, reports Docker up, and its state node keeps changing at
least every few heartbeats (the agent's own heartbeat period is in the report).
"""
import asyncio
import logging
import threading
import time

from dom0_plugin import documents
from dom0_plugin import constants as C
from dom0_plugin.errors import DockerUnavailable, VmUnreachable, XscError
from dom0_plugin.monitor.backoff import Backoff
from dom0_plugin.monitor.follower import Follower

log = logging.getLogger(__name__)

HEARTBEATS_MISSED = 3       # the report is stale after this many agent heartbeats


class XenstoreHub(threading.Thread):
    """The monitor's one xenstore connection: watches, and events handed to the loop."""

    def __init__(self, loop, deliver):
        threading.Thread.__init__(self, name="xenstore", daemon=True)
        self.loop = loop
        self.deliver = deliver          # deliver(token or None for "all") on the loop
        self.client = None
        self.watches = {}               # token -> path
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.stopping = threading.Event()

    def _connect(self):
        from xsc_contract.xenstore import Client
        client = Client()
        with self.lock:
            watches = dict(self.watches)
        for token, path in watches.items():
            client.watch(path, token)
        self.client = client
        self.connected.set()

    def run(self):
        from xsc_contract.xenstore import XenstoreError
        backoff = Backoff(0.5, 5.0)
        while not self.stopping.is_set():
            try:
                if self.client is None:
                    self._connect()
                    backoff.reset()
                    self.loop.call_soon_threadsafe(self.deliver, None)
                event = self.client.wait_event(timeout=5.0)
                if event is not None:
                    self.loop.call_soon_threadsafe(self.deliver, event.token)
            except (XenstoreError, OSError) as error:
                log.warning("xenstore connection lost: %s", error)
                self.connected.clear()
                if self.client is not None:
                    self.client.close()
                self.client = None
                self.loop.call_soon_threadsafe(self.deliver, None)
                self.stopping.wait(backoff.next())

    def _client(self):
        if not self.connected.wait(10.0):
            raise VmUnreachable("", "dom0's xenstored cannot be reached")
        return self.client

    def watch(self, path, token):
        """(in a worker thread) Watch ``path`` for the follower ``token``."""
        from xsc_contract.xenstore import XenstoreError
        with self.lock:
            self.watches[token] = path
        try:
            self._client().watch(path, token)
        except XenstoreError as error:
            if error.code != "EEXIST":      # set meanwhile by a reconnection: fine
                raise

    def unwatch(self, token):
        with self.lock:
            path = self.watches.pop(token, None)
        client = self.client
        if path is not None and client is not None:
            try:
                client.unwatch(path, token)
            except Exception:  # the connection may be gone: nothing left to undo
                pass


class AgentLink(object):
    """What the request socket needs of a follower's connection: ``call(fn)``.

    Agent-mode requests go through the plugin's own AgentDocker (operations.py opens it
    from the VM's domid), so nothing is lent: ``fn`` gets None."""

    def __init__(self, follower):
        self.follower = follower
        self.address = "xenstore"
        self.host_key = None

    async def call(self, fn):
        loop = asyncio.get_event_loop()
        return await loop.run_in_executor(self.follower.hub.executor, fn, None)

    def close(self):
        pass

    def close_idle(self, now=None):
        pass

    def request_channels(self):
        return 0


class AgentFollower(Follower):
    """Follower of a VM registered with the agent transport."""

    def _settings_changed(self, old, view):
        pass            # no login settings: the report is read through xenstore

    def on_addresses(self):
        pass            # no network involved

    def restart(self, reason):
        log.info("VM %s: reading the report again: %s", self.uuid, reason)
        self.restart_reason = reason
        self.poke.set()
        self.wake.set()

    def on_event(self):
        if self.wake is not None:
            self.wake.set()

    async def _session(self, backoff):
        from dom0_plugin import agent_transport
        hub = self.hub.xenstore()
        loop = asyncio.get_event_loop()
        domid = self.view.domid
        if domid <= 0:
            raise VmUnreachable(self.uuid, "the VM has no running domain")
        self.link = AgentLink(self)
        self.written = dict(self.view.digests)
        last_seq, last_change = None, time.monotonic()
        from xsc_contract.xenstore import XenstoreError
        try:
            try:
                await loop.run_in_executor(self.hub.executor, hub.watch,
                                           agent_transport.watch_path(domid), self.uuid)
            except XenstoreError as error:
                raise VmUnreachable(self.uuid, "xenstore: %s" % error)
            while True:
                self.wake.clear()
                report = await self._read(loop, hub, domid)
                state = report.state
                now = time.monotonic()
                if state.seq != last_seq:
                    last_seq, last_change = state.seq, now
                elif now - last_change > HEARTBEATS_MISSED * state.heartbeat:
                    raise VmUnreachable(self.uuid, "the guest agent stopped reporting (no "
                                        "change for %d s)" % (now - last_change))
                if state.status != "running":
                    raise DockerUnavailable(self.uuid, "the guest agent is stopped")
                if state.docker != "up":
                    raise DockerUnavailable(self.uuid, state.error or "the guest agent "
                                            "reports Docker down")
                docs = await loop.run_in_executor(self.hub.executor, self._render, report)
                self.last_fetch = time.monotonic()
                self._publish(docs)
                if not self.fresh:
                    self._fresh()
                    backoff.reset()
                    self.connects += 1
                    log.info("VM %s: following %d containers through the guest agent",
                             self.uuid, len(self.table))
                elif self.status is not None and time.time() - self.status.confirmed >= \
                        self.cfg.heartbeat:
                    self._write_status(self.status.state, self.status.since, "")
                try:
                    await asyncio.wait_for(self.wake.wait(),
                                           HEARTBEATS_MISSED * state.heartbeat + 1)
                except asyncio.TimeoutError:
                    pass
                if self.restart_reason:
                    raise VmUnreachable(self.uuid, self.restart_reason)
                now = time.monotonic()
                await asyncio.sleep(max(self.cfg.coalesce, self.fetches.ready_at(now) - now))
                self.fetches.take(time.monotonic())
        finally:
            self.fresh = False
            self.link = None
            hub.unwatch(self.uuid)

    async def _read(self, loop, hub, domid):
        from dom0_plugin import agent_transport
        from xsc_contract import report_schema
        from xsc_contract.xenstore import XenstoreError
        try:
            return await loop.run_in_executor(self.hub.executor, agent_transport.read_report,
                                              hub._client(), domid)
        except agent_transport.NoReport as error:
            raise VmUnreachable(self.uuid, "no guest agent report (%s)" % error)
        except report_schema.ReportError as error:
            raise XscError(C.ERR_AGENT_INVALID, [self.uuid, str(error)[:300]])
        except XenstoreError as error:
            raise VmUnreachable(self.uuid, "xenstore: %s" % error)

    def _render(self, report):
        from dom0_plugin import agent_transport
        containers, info, version = agent_transport.to_docker_shapes(report)
        self.table.replace(containers)
        return {C.KEY_DOCKER_PS: self._render_ps(),
                C.KEY_DOCKER_INFO: documents.render_info(info),
                C.KEY_DOCKER_VERSION: documents.render_version(version)}
