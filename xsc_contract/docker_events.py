"""What a Docker container event means for the container list, and when a re-read of
the list can be trusted (sans I/O: both followers, the guest agent's and the monitor's,
feed it events and list answers; it says which containers to read again, and when).

Why a re-read can be wrong: the Engine emits some events (``pause``, ``die``...) before
its list (``/containers/json``, served from a replica of the container state) shows the
new state, and under load that gap can last longer than any fixed delay. So after each
event the list entry is compared with what the event implies; while they disagree the
container is read again with growing delays, and once they agree it is read one more
time a little later (the "settle" read) to catch any change that raced the first read.
Only the last event with an expectation counts: the list can lag by at most that one.
"""

import re

# Container actions after which the list may differ. Others (exec_*, top, attach,
# resize, health_status, archive-path...) change nothing a list entry holds.
LIST_ACTIONS = frozenset(("create", "start", "restart", "stop", "die", "kill", "destroy",
                          "pause", "unpause", "rename", "update", "oom"))
# ...and those after which the engine's counts (/info) may differ.
INFO_ACTIONS = frozenset(("create", "start", "die", "destroy", "pause", "unpause"))

PRESENT, ABSENT, RUNNING, PAUSED, STOPPED = "present", "absent", "running", "paused", "stopped"
_EXPECT = {"create": PRESENT, "rename": PRESENT, "destroy": ABSENT,
           "start": RUNNING, "restart": RUNNING, "unpause": RUNNING,
           "pause": PAUSED, "die": STOPPED, "stop": STOPPED}
_RUNNING_STATES = ("running",)
_STOPPED_STATES = ("exited", "dead", "restarting", "removing")

RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4)   # about 13 s in all
SETTLE_SECONDS = 0.5

_FULL_ID = re.compile(r"\A[0-9a-f]{64}\Z")


def container_action(event):
    """(full container id or None, action) of one decoded ``/events`` item, any API
    version (``status``/``id`` are gone from API 1.52; ``Type``/``Action``/``Actor`` stay).
    The action loses its ``: detail`` suffix (``exec_start: sh``, ``health_status: ok``)."""
    if not isinstance(event, dict):
        return None, ""
    kind = event.get("Type") or ("container" if "status" in event else None)
    action = event.get("Action") or event.get("status") or ""
    action = action.split(":", 1)[0].strip() if isinstance(action, str) else ""
    if kind != "container":
        return None, action
    actor = event.get("Actor") if isinstance(event.get("Actor"), dict) else {}
    container_id = actor.get("ID") or event.get("id")
    if not (isinstance(container_id, str) and _FULL_ID.match(container_id)):
        container_id = None
    return container_id, action


def expectation(action):
    """What the list should show once it caught up with ``action`` (None: no change
    of state follows from it: kill, update, oom...)."""
    return _EXPECT.get(action)


def agrees(expect, summary):
    """Does one list entry (None when the container is not listed) match ``expect``?"""
    if expect is None:
        return True
    if expect == ABSENT:
        return summary is None
    if summary is None:
        return False
    state = summary.get("State") if isinstance(summary, dict) else None
    if expect == RUNNING:
        return state in _RUNNING_STATES
    if expect == PAUSED:
        return state == "paused"
    if expect == STOPPED:
        return state in _STOPPED_STATES
    return True


class Convergence(object):
    """Per container: the expectation of its last event, and when to read it again.

    ``event()`` for each event; the caller then reads the container (at once or in its
    next batch) and reports the answer with ``observed()``; ``due()`` / ``next_due()``
    say which containers to read again, and when. Bounded: at most ``limit`` containers
    are tracked (beyond that the caller re-reads everything anyway).
    """

    def __init__(self, limit=1000, delays=RETRY_DELAYS, settle=SETTLE_SECONDS):
        self.limit = limit
        self.delays = tuple(delays)
        self.settle = settle
        self._track = {}    # id -> [expectation, retries made, settled, event count]
        self._due = {}      # id -> monotonic time of the next read
        self.gave_up = 0    # containers whose list never caught up (left to the resync)

    def __len__(self):
        return len(self._track)

    def event(self, container_id, action):
        """An event for ``container_id``: it will be read; forget any planned read."""
        entry = self._track.get(container_id)
        expect = expectation(action)
        if entry is None:
            if len(self._track) >= self.limit:
                return
            entry = self._track[container_id] = [expect, 0, False, 0]
        elif expect is not None:
            entry[0] = expect
        entry[1], entry[2], entry[3] = 0, False, entry[3] + 1
        self._due.pop(container_id, None)

    def marks(self, ids):
        """Taken before a read of ``ids``: lets ``observed()`` ignore the answer for a
        container that had another event while the read was under way."""
        return dict((cid, self._track[cid][3]) for cid in ids if cid in self._track)

    def observed(self, ids, found, now, marks=None):
        """The containers ``ids`` were read (the read began after ``marks`` was taken);
        ``found`` maps the ids of those listed to their list entry."""
        for container_id in ids:
            entry = self._track.get(container_id)
            if entry is None:
                continue
            if marks is not None and marks.get(container_id) != entry[3]:
                continue    # a newer event: that container is read again anyway
            expect, retries, settled = entry[:3]
            if agrees(expect, found.get(container_id)):
                if settled:
                    self.forget(container_id)
                else:
                    entry[2] = True
                    self._due[container_id] = now + self.settle
            elif retries < len(self.delays):
                entry[1], entry[2] = retries + 1, False
                self._due[container_id] = now + self.delays[retries]
            else:
                self.gave_up += 1
                self.forget(container_id)

    def forget(self, container_id):
        self._track.pop(container_id, None)
        self._due.pop(container_id, None)

    def tracked(self):
        """The containers still being checked (a full re-read observes them all: it can
        lag behind an event just as a filtered one can)."""
        return set(self._track)

    def due(self, now):
        """The containers to read again now (they stay tracked until observed)."""
        ready = [cid for cid, when in self._due.items() if when <= now]
        for cid in ready:
            del self._due[cid]
        return set(ready)

    def next_due(self):
        """The monotonic time of the next planned read, or None."""
        return min(self._due.values()) if self._due else None
