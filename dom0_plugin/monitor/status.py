"""The freshness record the monitor keeps in ``VM.other_config['xscontainer-status']``.

A small JSON object (ASCII, compact, sorted keys), for example::

    {"confirmed":1717000000,"host":"<host uuid>","reason":"","since":1716990000,
     "state":"fresh","v":1,"vm":"<vm uuid>"}

- ``state``: ``fresh`` (connected, following Docker's events: the documents are true),
  ``stale`` (contact lost since ``since``; the documents are the last known ones and are
  not being updated) or ``unreachable`` (stale for longer than the grace period; a XAPI
  message ``XSCONTAINER_CANNOT_MONITOR`` is on the VM until monitoring recovers).
- ``since``: Unix seconds when that state began. ``confirmed``: Unix seconds when the
  documents were last known true (renewed every few minutes while fresh, so a reader can
  tell a monitor that died: a "fresh" record whose ``confirmed`` is older than about
  twice the heartbeat is not fresh).
- ``vm``: the uuid of the VM the record (and the documents) were written for. A clone or
  snapshot carries a copy of its parent's: a mismatch tells the monitor to wipe them.
- ``host``: uuid of the host whose monitor wrote it. ``reason``: why not fresh (a
  sentence for a person, at most 300 characters).
- ``shown`` and ``total``, only when docker_ps could not hold every container (thousands
  of them): how many entries it holds, of how many. ``get_ps`` lists them all.
"""
import collections
import json

from dom0_plugin import validate

VERSION = 1
FRESH = "fresh"
STALE = "stale"
UNREACHABLE = "unreachable"
STATES = (FRESH, STALE, UNREACHABLE)
REASON_MAX = 300

Status = collections.namedtuple("Status", "state since confirmed vm host reason shown")
Status.__new__.__defaults__ = (None,)   # shown: None, or (entries shown, containers)


def make(state, since, confirmed, vm, host, reason="", shown=None):
    """A Status with its fields normalised (ints, safe reason text)."""
    if state not in STATES:
        raise ValueError("unknown state %r" % state)
    if shown is not None:
        shown = (int(shown[0]), int(shown[1]))
    return Status(state, int(since), int(confirmed), vm, host,
                  validate.guest_text(reason or "", REASON_MAX), shown)


def encode(status):
    """The other_config value of a Status."""
    data = {"v": VERSION, "state": status.state, "since": status.since,
            "confirmed": status.confirmed, "vm": status.vm, "host": status.host,
            "reason": status.reason}
    if status.shown is not None:
        data["shown"], data["total"] = status.shown
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def decode(text):
    """The Status in an other_config value, or None when it is not one of ours."""
    if not text or len(text) > 4096:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("state") not in STATES:
        return None
    try:
        shown = None
        if "shown" in data:
            shown = (int(data["shown"]), int(data["total"]))
        return Status(data["state"], int(data.get("since") or 0),
                      int(data.get("confirmed") or 0), str(data.get("vm") or ""),
                      str(data.get("host") or ""), str(data.get("reason") or ""), shown)
    except (KeyError, TypeError, ValueError):
        return None
