"""``event.from``: subscriptions, tokens and the blocking wait, following xapi_event.ml."""
import time

from . import schema
from .wire import ApiError, encode_record


def token_to_string(gen, msg_gen):
    # Zero-padded so tokens differing only in generation compare as strings (xapi).
    return "%020d,%020d" % (gen, msg_gen)


def parse_token(token):
    """xapi's Token.of_string: "" -> (0, 0); "a,b" -> ints; else
    EVENT_FROM_TOKEN_PARSE_FAILURE [token]."""
    from .wire import ocaml_int_of_string
    parts = token.split(",")
    if parts == [""]:
        return 0, 0
    if len(parts) != 2:
        raise ApiError("EVENT_FROM_TOKEN_PARSE_FAILURE", [token])
    try:
        return (ocaml_int_of_string(parts[0], 64, "Int64.of_string"),
                ocaml_int_of_string(parts[1], 64, "Int64.of_string"))
    except ApiError:
        raise ApiError("EVENT_FROM_TOKEN_PARSE_FAILURE", [token])


class Subscription(object):
    """Parsed ``classes`` argument: "*", "vm", or "vm/OpaqueRef:..." (class lower-cased)."""

    def __init__(self, classes):
        self.all = False
        self.classes = set()
        self.objects = set()
        for x in classes:
            if x == "*":
                self.all = True
                continue
            cls, sep, ref = x.partition("/")
            if sep:
                self.objects.add((cls.lower(), ref))
            else:
                self.classes.add(cls.lower())

    def table_matches(self, low):
        return self.all or low in self.classes or any(c == low for c, _ in self.objects)

    def object_matches(self, low, ref):
        return self.all or low in self.classes or (low, ref) in self.objects


def event_from(db, classes, token, timeout, visible, session_ref, session_alive):
    """Block until something matching ``classes`` changed after ``token`` or until
    ``timeout`` seconds passed; return xapi's event_from record (wire form)."""
    from_gen, from_msg = parse_token(token)
    subs = Subscription(classes)
    deadline = time.time() + timeout
    with db.lock:
        while True:
            if not session_alive():
                raise ApiError("SESSION_INVALID", [session_ref])
            creates, mods, dels, msgs, last, msg_gen = db.events_since(
                subs, from_gen, from_msg, visible)
            remaining = deadline - time.time()
            if creates or mods or dels or msgs or remaining <= 0:
                break
            from_gen, from_msg = last, msg_gen if subs.table_matches("message") else from_msg
            db.cond.wait(min(remaining, 30.0))
        events = []
        for op, items in (("add", creates), ("mod", mods)):
            for gen, low, ref, table in items:
                events.append((gen, {"id": str(gen), "timestamp": "0.0", "class": low,
                                     "operation": op, "ref": ref,
                                     "snapshot": encode_record(table, db.record(table, ref))}))
        for gen, low, ref, _ in dels:
            events.append((gen, {"id": str(gen), "timestamp": "0.0", "class": low,
                                 "operation": "del", "ref": ref}))
        events.sort(key=lambda e: e[0])
        out = [e for _, e in events]
        for op, ref, rec in msgs:
            ev = {"id": "0", "timestamp": "0.0", "class": "message", "operation": op,
                  "ref": ref}
            if rec is not None:
                ev["snapshot"] = encode_record("message", rec)
            out.append(ev)
        return {"events": out, "valid_ref_counts": db.valid_ref_counts(),
                "token": token_to_string(last, msg_gen)}


def inject(db, cls, ref):
    """event.inject: touch an object; returns the token just before that write."""
    table = schema.class_by_lower(cls.lower())
    if table is None or not table.in_db or not db.exists(table.name, ref):
        raise ApiError("HANDLE_INVALID", [cls, ref])
    g = db.gen + 1
    db.touch(table.name, ref)
    return token_to_string(g - 1, 0)
