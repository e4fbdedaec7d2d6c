"""Writes the report into the guest's xenstore tree: only what changed, in one
transaction per batch, within a node budget, degrading cleanly when the quota is full.

The caller decides when to publish (at most about once a second); a publish that
changes nothing writes nothing, except the heartbeat the caller asks for.
"""

import collections
import logging
import time

from xsc_contract import report_schema as S
from xsc_contract.xenstore import XenstoreError

log = logging.getLogger(__name__)

Snapshot = collections.namedtuple("Snapshot", "docker_up error containers version info")
Snapshot.__doc__ = """What the collector knows: Docker reachable or not (and why not),
containers {id: Docker's /containers/json item}, Docker's /version and /info."""

EMPTY_SNAPSHOT = Snapshot(False, "the Docker Engine has not been reached yet", {}, {}, {})

TX_RETRIES = 5
QUOTA_RETRY_SECONDS = 30.0


class QuotaExceeded(Exception):
    pass


def _priority(item):
    """Order of containers when not all fit: running/paused first, newest first."""
    summary = item[1]
    state = summary.get("State")
    created = summary.get("Created")
    created = created if isinstance(created, int) and not isinstance(created, bool) else 0
    return (0 if state in ("running", "paused", "restarting") else 1, -created, item[0])


class Publisher(object):
    """Publishes Snapshots under the relative layout of report_schema."""

    def __init__(self, xs, agent_version, verbs, heartbeat, max_containers=S.MAX_CONTAINERS,
                 quota_retry=QUOTA_RETRY_SECONDS, clock=time.time):
        self.xs = xs
        self.lay = S.layout()
        self.agent_version = agent_version
        self.verbs = tuple(verbs)
        self.heartbeat = int(heartbeat)
        self.max_containers = min(int(max_containers), S.MAX_CONTAINERS)
        self.quota_retry = quota_retry
        self.clock = clock
        self.started = int(clock())
        self.seq = 0
        self.published = {}         # path -> value, as committed
        self.pages = {}             # container id -> page
        self.fresh = True           # nothing known about what xenstore holds
        self.quota_cap = None       # containers that fit when the quota was hit
        self.quota_until = 0.0
        self.writes = 0             # batches committed (for tests and logs)
        self._last_state = None

    def reset(self, xs):
        """A new xenstore connection: rewrite everything at the next publish."""
        self.xs = xs
        self.published = {}
        self.fresh = True
        # Keep seq growing across agent restarts: dom0 may hold the last one it saw.
        try:
            previous = S.decode_state(xs.read(self.lay.state)).seq
        except (XenstoreError, S.ReportError):
            previous = 0
        self.seq = max(self.seq, previous)

    # -- desired tree ----------------------------------------------------------------------
    def _assign_pages(self, ids):
        keep = set(ids)
        for container_id in list(self.pages):
            if container_id not in keep:
                del self.pages[container_id]
        used = collections.Counter(self.pages.values())
        for container_id in ids:
            if container_id in self.pages:
                continue
            page = next(p for p in range(S.MAX_PAGES) if used[p] < S.PAGE_SIZE)
            self.pages[container_id] = page
            used[page] += 1

    def _desired(self, snapshot, limit):
        """({path: value} of the report except the state node, count, total)."""
        encoded = {}
        for container_id, summary in snapshot.containers.items():
            try:
                encoded[container_id] = S.encode_container(summary)[1]
            except ValueError as problem:
                log.warning("container left out of the report: %s", problem)
        total = len(encoded)
        chosen = sorted(snapshot.containers.items(), key=_priority)
        ids = [cid for cid, _ in chosen if cid in encoded][:limit]
        self._assign_pages(ids)
        lay = self.lay
        info = dict(snapshot.info)
        states = collections.Counter(s.get("State") for s in snapshot.containers.values())
        if snapshot.docker_up:
            info.update(Containers=total, ContainersRunning=states["running"]
                        + states["restarting"], ContainersPaused=states["paused"],
                        ContainersStopped=total - states["running"] - states["restarting"]
                        - states["paused"])
        nodes = {lay.agent: S.encode_agent(self.agent_version, self.started, self.verbs),
                 lay.version: S.encode_version(snapshot.version),
                 lay.info: S.encode_info(info),
                 lay.containers: ""}
        for container_id in ids:
            page = self.pages[container_id]
            nodes[S.page_path(lay, page)] = ""
            nodes[S.container_path(lay, page, container_id)] = encoded[container_id]
        return nodes, len(ids), total

    def _state(self, snapshot, status, count, total, error):
        return S.encode_state(self.seq, self.clock(), status,
                              S.DOCKER_UP if snapshot.docker_up else S.DOCKER_DOWN,
                              error, count, total, count < total, self.heartbeat)

    # -- writing -----------------------------------------------------------------------------
    def publish(self, snapshot, heartbeat=False, status=S.AGENT_RUNNING):
        """Bring xenstore in line with ``snapshot``. Returns True when it wrote.
        Raises XenstoreError for problems other than the quota (e.g. connection lost)."""
        now = self.clock()
        limit = self.max_containers
        if self.quota_cap is not None and now < self.quota_until:
            limit = min(limit, self.quota_cap)
        error = snapshot.error if not snapshot.docker_up else ""
        while True:
            nodes, count, total = self._desired(snapshot, limit)
            note = error
            if count < total and limit < self.max_containers:
                note = ("xenstore node quota reached: %d of %d containers published; %s"
                        % (count, total, error)).rstrip("; ")
            if not self._changed(nodes, note, count, total, status) and not heartbeat:
                return False
            try:
                self._commit(nodes, snapshot, status, count, total, note)
            except QuotaExceeded:
                if limit == 0:
                    self._last_resort(snapshot, status, total)
                    return True
                limit = min(limit, count) // 2
                self.quota_cap, self.quota_until = limit, now + self.quota_retry
                log.warning("xenstore quota reached: trying with %d containers", limit)
                continue
            if limit >= min(self.max_containers, total) and self.quota_cap is not None:
                log.info("xenstore quota no longer limits the report")
                self.quota_cap = None
            return True

    def _changed(self, nodes, note, count, total, status):
        if self.fresh or set(nodes) != set(k for k in self.published if k != self.lay.state):
            return True
        if any(self.published.get(path) != value for path, value in nodes.items()):
            return True
        return self._state_key(note, count, total, status) != self._last_state

    @staticmethod
    def _state_key(note, count, total, status):
        return (note, count, total, status)

    def _commit(self, nodes, snapshot, status, count, total, note):
        lay = self.lay
        removals = [] if self.fresh else self._removals(nodes)
        writes = [(p, v) for p, v in sorted(nodes.items())
                  if self.fresh or self.published.get(p) != v]
        # Directories first (sorted order puts a parent before its children).
        for attempt in range(TX_RETRIES):
            self.seq += 1
            state = self._state(snapshot, status, count, total, note)
            tx = self.xs.transaction_start()
            try:
                if self.fresh:
                    self._rm(lay.containers, tx)
                for path in removals:
                    self._rm(path, tx)
                for path, value in writes:
                    self.xs.write(path, value, tx)
                self.xs.write(lay.state, state, tx)
            except XenstoreError as problem:
                self._abort(tx)
                if problem.code == "EQUOTA":
                    raise QuotaExceeded()
                raise
            if self.xs.transaction_end(tx, True):
                break
        else:
            raise XenstoreError("EAGAIN", "publish", lay.root,
                                "%d transactions conflicted" % TX_RETRIES)
        self.published = dict(nodes)
        self.published[lay.state] = state
        self._last_state = self._state_key(note, count, total, status)
        self.fresh = False
        self.writes += 1
        return True

    def _removals(self, nodes):
        """Published paths no longer wanted, without those below a removed parent."""
        gone = sorted(p for p in self.published if p not in nodes and p != self.lay.state)
        out = []
        for path in gone:
            if not any(path.startswith(parent + "/") for parent in out):
                out.append(path)
        return out

    def _rm(self, path, tx):
        try:
            self.xs.rm(path, tx)
        except XenstoreError as problem:
            if problem.code != "ENOENT":
                raise

    def _abort(self, tx):
        try:
            self.xs.transaction_end(tx, False)
        except XenstoreError:
            pass

    def _last_resort(self, snapshot, status, total):
        """Not even an empty report fits: rewrite the state node alone (an existing
        node costs no quota) so dom0 learns why."""
        self.seq += 1
        note = "xenstore node quota reached: no container could be published"
        state = self._state(snapshot, status, 0, total, note)
        try:
            self.xs.write(self.lay.state, state)
            self.published[self.lay.state] = state
        except XenstoreError as problem:
            log.warning("xenstore quota reached: cannot even write %s (%s)",
                        self.lay.state, problem.code)
        self.fresh = True   # what is in xenstore is unknown: rewrite all next time
        self._last_state = None

    def mark_stopped(self, snapshot):
        """Say the agent stopped (on a clean exit): the report stays, marked stale."""
        try:
            self.publish(snapshot, heartbeat=True, status=S.AGENT_STOPPED)
        except XenstoreError as problem:
            log.warning("could not mark the report stopped: %s", problem)
