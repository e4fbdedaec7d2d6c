"""The simulator's database: objects, xapi-style generation counters, event.from, and
persistence to one JSON file.

As in xapi, every write bumps a database-wide generation; each object remembers the
generation it was created and last modified at, deleted objects are remembered (in
memory only) with their deletion generation, and ``event.from`` tokens are
``"%020d,%020d" % (generation, message generation)``. Messages live outside the database
with their own generation counter, as xapi keeps them in their own store. Both counters
are persisted, so a token from before a restart stays valid (xapi persists its
generation count in the database too); deletions before a restart are not replayed.
Writes are flushed to the file (temp file + rename) within ~50 ms.
"""
import json
import os
import threading
import time
import uuid as uuidlib

from . import schema
from .wire import ApiError

FORMAT = 1
RESTART_MARGIN = 1000000
DOMID_MARGIN = 64


def new_ref():
    return "OpaqueRef:" + str(uuidlib.uuid4())


class _Obj(object):
    __slots__ = ("rec", "ctime", "mtime")

    def __init__(self, rec, ctime, mtime):
        self.rec = rec
        self.ctime = ctime
        self.mtime = mtime


def _copy(v):
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_copy(x) for x in v]
    return v


class Database(object):
    """All state behind one re-entrant lock; ``cond`` wakes event.from waiters."""

    def __init__(self, path=None):
        self.path = path
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.tables = {name: {} for name in schema.DB_TABLES}
        self.gen = 0
        self.deleted = []               # (table, ref, ctime, dtime)
        self.messages = {}              # ref -> _Obj (ctime = message generation)
        self.msg_gen = 0
        self.msg_deleted = []           # (ref, message generation)
        self.next_domid = 1
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._flusher = None

    # ------------------------------------------------------------ reads

    def exists(self, table, ref):
        return ref in self.tables[table]

    def get(self, table, ref):
        """The stored record (not a copy) or HANDLE_INVALID [table, ref]."""
        obj = self.tables[table].get(ref)
        if obj is None:
            raise ApiError("HANDLE_INVALID", [table, ref])
        return obj.rec

    def refs(self, table):
        return list(self.tables[table].keys())

    def items(self, table):
        return [(ref, obj.rec) for ref, obj in self.tables[table].items()]

    def by_uuid(self, table, uuid):
        for ref, obj in self.tables[table].items():
            if obj.rec.get("uuid") == uuid:
                return ref
        raise ApiError("UUID_INVALID", [table, uuid])

    def record(self, table, ref):
        """A copy of the record with the computed relation fields filled in."""
        rec = _copy(self.get(table, ref))
        if table == "host":
            rec["resident_VMs"] = [r for r, v in self.items("VM") if v["resident_on"] == ref]
        elif table == "VM":
            rec["snapshots"] = [r for r, v in self.items("VM") if v["snapshot_of"] == ref]
        return rec

    # ------------------------------------------------------------ writes

    def _bump(self):
        self.gen += 1
        self._dirty.set()
        self.cond.notify_all()
        return self.gen

    def create(self, table, rec, ref=None):
        ref = ref or new_ref()
        g = self._bump()
        self.tables[table][ref] = _Obj(rec, g, g)
        self._touch_related(table, rec, None)
        return ref

    def update(self, table, ref, changes):
        """Apply several field changes as one write (one generation)."""
        obj = self.tables[table].get(ref)
        if obj is None:
            raise ApiError("HANDLE_INVALID", [table, ref])
        old = dict(obj.rec)
        obj.rec.update(changes)
        obj.mtime = self._bump()
        self._touch_related(table, obj.rec, old)

    def touch(self, table, ref):
        obj = self.tables[table].get(ref)
        if obj is not None:
            obj.mtime = self._bump()

    def destroy(self, table, ref):
        obj = self.tables[table].pop(ref, None)
        if obj is None:
            raise ApiError("HANDLE_INVALID", [table, ref])
        g = self._bump()
        self.deleted.append((table, ref, obj.ctime, g))
        self._touch_related(table, None, obj.rec)

    def _touch_related(self, table, new, old):
        # xapi bumps the other end of a one-to-many relation (host.resident_VMs,
        # VM.snapshots), so watchers of the host / parent VM see a mod event.
        if table != "VM":
            return
        for field, other in (("resident_on", "host"), ("snapshot_of", "VM")):
            before = old.get(field) if old else None
            after = new.get(field) if new else None
            if before == after:
                continue
            for r in (before, after):
                if r and r in self.tables[other]:
                    self.tables[other][r].mtime = self._bump()

    def alloc_domid(self):
        d = self.next_domid
        self.next_domid += 1
        self._dirty.set()
        return d

    # ------------------------------------------------------------ messages

    def message_create(self, rec):
        ref = new_ref()
        self.msg_gen += 1
        self.messages[ref] = _Obj(rec, self.msg_gen, self.msg_gen)
        self._dirty.set()
        self.cond.notify_all()
        return ref

    def message_get(self, ref):
        obj = self.messages.get(ref)
        if obj is None:
            raise ApiError("HANDLE_INVALID", ["message", ref])
        return obj.rec

    def message_destroy(self, ref):
        if self.messages.pop(ref, None) is None:
            raise ApiError("HANDLE_INVALID", ["message", ref])
        self.msg_gen += 1
        self.msg_deleted.append((ref, self.msg_gen))
        self._dirty.set()
        self.cond.notify_all()

    # ------------------------------------------------------------ events

    def events_since(self, subs, from_gen, from_msg, visible):
        """One scan, as xapi's ``from_inner``: (events, last generation, message
        generation). ``visible(table)`` filters tables the session may not read."""
        creates, mods, dels = [], [], []
        last = from_gen
        for table in schema.DB_TABLES:
            low = table.lower()
            if not subs.table_matches(low) or not visible(table):
                continue
            for ref, obj in self.tables[table].items():
                if obj.mtime <= from_gen or not subs.object_matches(low, ref):
                    continue
                last = max(last, obj.mtime)
                if obj.ctime > from_gen:
                    creates.append((obj.ctime, low, ref, table))
                else:
                    mods.append((obj.mtime, low, ref, table))
            for dtable, ref, ctime, dtime in self.deleted:
                if dtable != table or dtime <= from_gen or not subs.object_matches(low, ref):
                    continue
                last = max(last, dtime)
                if ctime <= from_gen:
                    dels.append((dtime, low, ref, None))
        msgs = []
        msg_gen = 0
        if subs.table_matches("message"):
            msg_gen = self.msg_gen
            for ref, obj in self.messages.items():
                if obj.ctime > from_msg:
                    msgs.append(("add", ref, obj.rec))
            for ref, g in self.msg_deleted:
                if g > from_msg:
                    msgs.append(("del", ref, None))
        return creates, mods, dels, msgs, last, msg_gen

    def valid_ref_counts(self):
        return {t.lower(): len(self.tables[t]) for t in schema.DB_TABLES}

    # ------------------------------------------------------------ persistence

    def to_json(self):
        return {
            "format": FORMAT,
            "generation": self.gen,
            "message_generation": self.msg_gen,
            "next_domid": self.next_domid,
            "tables": {t: {ref: {"rec": o.rec, "ctime": o.ctime, "mtime": o.mtime}
                           for ref, o in objs.items()} for t, objs in self.tables.items()},
            "messages": {ref: {"rec": o.rec, "gen": o.ctime}
                         for ref, o in self.messages.items()},
        }

    def load(self):
        """Load the file if it exists; returns False when there is nothing to load."""
        if not self.path or not os.path.exists(self.path):
            return False
        with open(self.path) as f:
            data = json.load(f)
        # Writes made just before a crash may not have reached the file, so a client may
        # hold a token newer than the saved counters: jump past anything it can hold so
        # that changes after the restart are never hidden from an old token.
        self.gen = int(data.get("generation", 0)) + RESTART_MARGIN
        self.msg_gen = int(data.get("message_generation", 0)) + RESTART_MARGIN
        self.next_domid = int(data.get("next_domid", 1)) + DOMID_MARGIN
        for t, objs in data.get("tables", {}).items():
            if t not in self.tables:
                continue
            for ref, o in objs.items():
                rec = schema.default_record(t)
                rec.update(o["rec"])
                self.tables[t][ref] = _Obj(rec, int(o["ctime"]), int(o["mtime"]))
        domids = [o.rec["domid"] for o in self.tables["VM"].values()]
        self.next_domid = max([self.next_domid] + [d + 1 for d in domids])
        for ref, o in data.get("messages", {}).items():
            rec = schema.default_record("message")
            rec.update(o["rec"])
            self.messages[ref] = _Obj(rec, int(o["gen"]), int(o["gen"]))
        return True

    def flush(self):
        """Write the whole database atomically (temp file + rename)."""
        if not self.path:
            return
        with self.lock:
            self._dirty.clear()
            text = json.dumps(self.to_json(), sort_keys=True)
        tmp = "%s.tmp.%d" % (self.path, os.getpid())
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
        os.replace(tmp, self.path)

    def start_flusher(self, delay=0.05):
        """Persist changes within ``delay`` seconds of the write that made them."""
        def run():
            while not self._stop.is_set():
                if self._dirty.wait(0.5):
                    time.sleep(delay)
                    try:
                        self.flush()
                    except OSError:
                        time.sleep(0.5)
        self._flusher = threading.Thread(target=run, name="db-flusher", daemon=True)
        self._flusher.start()

    def stop_flusher(self):
        self._stop.set()
        if self._flusher:
            self._flusher.join(2)
        self.flush()
