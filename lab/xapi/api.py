"""The XenAPI methods of the simulator and xapi's dispatch rules.

Dispatch follows xapi's generated server: look the method up (``MESSAGE_METHOD_UNKNOWN
[name]``), check the parameter count (``MESSAGE_PARAMETER_COUNT_MISMATCH [name,
expected, received]``, counts without the session), convert every parameter (type errors
are ``INTERNAL_ERROR``), check the session (``SESSION_INVALID [ref]``), check RBAC
(``RBAC_PERMISSION_DENIED [permission, "No permission in user session. (Roles with this
permission: ...)"]``), then run the implementation.
"""
import collections
import uuid as uuidlib

from . import events, schema, wire
from .plugins import call_plugin
from .schema import (BOOL, FLOAT, INT, POOL_ADMIN, POOL_OP, READ_ONLY, SMAP, STRING,
                     VM_ADMIN, VM_OP, VM_POWER_ADMIN, Ref, Set)
from .wire import ApiError

Method = collections.namedtuple(
    "Method", "name params optional result role handler session keyed")
Session = collections.namedtuple("Session", "rec user rank superuser")

RECORD = "record"
RECORDS = "records"
NONE = ("none",)
ANY = ("any",)
STRUCT = "struct"


def _method(name, params, result, role, handler, optional=(), session=True, keyed=None):
    return Method(name, list(params), list(optional), result, role, handler, session, keyed)


class Api(object):
    """Method table and dispatcher over a Simulator (db, sessions, vmops, hosts)."""

    def __init__(self, sim):
        self.sim = sim
        self.db = sim.db
        self.methods = {}
        for spec in schema.CLASSES.values():
            if spec.name != "session":
                self._generic(spec)
        self._session_methods()
        self._custom()

    # ------------------------------------------------------------ registry

    def add(self, m):
        cls, _, msg = m.name.partition(".")
        self.methods[(cls, msg)] = m

    def lookup(self, name):
        """The method called ``name``, matched literally as xapi does (``VM.get_all``, not
        ``vm.get_all``); ``event_from`` is xapi's spelling of ``event.from`` for clients
        whose language reserves ``from`` (Python's XenAPI)."""
        if name == "event_from":
            name = "event.from"
        cls, _, msg = name.partition(".")
        return self.methods.get((cls, msg))

    # ------------------------------------------------------------ stores

    def _store(self, cls):
        """(get a record copy, list (ref, rec), write changes) for a class."""
        db = self.db
        if cls == "message":
            return (lambda ref: dict(db.message_get(ref)),
                    lambda: list((r, o.rec) for r, o in db.messages.items()),
                    None)
        if cls == "session":
            def get(ref):
                s = self.sim.sessions.get(ref)
                if s is None:
                    raise ApiError("HANDLE_INVALID", ["session", ref])
                return dict(s.rec)

            def write(ref, changes):
                self.sim.sessions[ref].rec.update(changes)
            return get, lambda: [(r, s.rec) for r, s in self.sim.sessions.items()], write
        return (lambda ref: db.record(cls, ref),
                lambda: [(r, db.record(cls, r)) for r in db.refs(cls)],
                lambda ref, changes: db.update(cls, ref, changes))

    def _generic(self, spec):
        """get_all, get_record, get_by_uuid, getters, setters, map/set modifiers."""
        n = spec.name
        get, items, write = self._store(n)
        lock = self.db.lock

        def locked(f):
            def run(ctx, *a):
                with lock:
                    return f(*a)
            return run

        self.add(_method(n + ".get_all", [], Set(Ref(n)), spec.read_role,
                         locked(lambda: [r for r, _ in items()])))
        self.add(_method(n + ".get_all_records", [], (RECORDS, n), spec.read_role,
                         locked(lambda: collections.OrderedDict(items()))))
        self.add(_method(n + ".get_record", [("self", Ref(n))], (RECORD, n), spec.read_role,
                         locked(get)))

        def by_uuid(uuid):
            for r, rec in items():
                if rec["uuid"] == uuid:
                    return r
            raise ApiError("UUID_INVALID", [n, uuid])
        self.add(_method(n + ".get_by_uuid", [("uuid", STRING)], Ref(n), spec.read_role,
                         locked(by_uuid)))
        if spec.name_label_lookup:
            self.add(_method(n + ".get_by_name_label", [("label", STRING)], Set(Ref(n)),
                             spec.read_role, locked(
                                 lambda label: [r for r, rec in items()
                                                if rec["name_label"] == label])))
        for f in spec.fields.values():
            self._field_methods(spec, f, get, write, locked)

    def _field_methods(self, spec, f, get, write, locked):
        n = spec.name
        self.add(_method("%s.get_%s" % (n, f.name), [("self", Ref(n))], f.type,
                         spec.read_role, locked(lambda ref, name=f.name: get(ref)[name])))
        if not f.rw or write is None:
            return
        role = f.write_role if f.write_role is not None else spec.write_role
        keyed = spec.keyed_maps.get(f.name)

        def set_(ref, value, name=f.name):
            get(ref)
            write(ref, {name: value})
        self.add(_method("%s.set_%s" % (n, f.name), [("self", Ref(n)), ("value", f.type)],
                         NONE, role, locked(set_)))
        if f.type[0] == "map":
            def add_to(ref, key, value, name=f.name):
                m = dict(get(ref)[name])
                if key in m:
                    raise ApiError("MAP_DUPLICATE_KEY", [n, name, ref, key])
                m[key] = value
                write(ref, {name: m})

            def remove_from(ref, key, name=f.name):
                m = dict(get(ref)[name])
                if key in m:        # removing an absent key is not an error in xapi
                    del m[key]
                    write(ref, {name: m})
            self.add(_method("%s.add_to_%s" % (n, f.name),
                             [("self", Ref(n)), ("key", f.type[1]), ("value", f.type[2])],
                             NONE, role, locked(add_to), keyed=keyed))
            self.add(_method("%s.remove_from_%s" % (n, f.name),
                             [("self", Ref(n)), ("key", f.type[1])], NONE, role,
                             locked(remove_from), keyed=keyed))
        elif f.type[0] == "set":
            def add_(ref, value, name=f.name):
                s = list(get(ref)[name])
                if value not in s:
                    write(ref, {name: s + [value]})

            def remove_(ref, value, name=f.name):
                s = list(get(ref)[name])
                if value in s:
                    write(ref, {name: [x for x in s if x != value]})
            self.add(_method("%s.add_%s" % (n, f.name),
                             [("self", Ref(n)), ("value", f.type[1])], NONE, role,
                             locked(add_)))
            self.add(_method("%s.remove_%s" % (n, f.name),
                             [("self", Ref(n)), ("value", f.type[1])], NONE, role,
                             locked(remove_)))

    # ------------------------------------------------------------ sessions

    def _session_methods(self):
        spec = schema.SESSION
        get, _, write = self._store("session")
        lock = self.db.lock

        def locked(f):
            def run(ctx, *a):
                with lock:
                    return f(*a)
            return run
        self.add(_method("session.get_record", [("self", Ref("session"))],
                         (RECORD, "session"), READ_ONLY, locked(get)))

        def by_uuid(uuid):
            for r, s in self.sim.sessions.items():
                if s.rec["uuid"] == uuid:
                    return r
            raise ApiError("UUID_INVALID", ["session", uuid])
        self.add(_method("session.get_by_uuid", [("uuid", STRING)], Ref("session"),
                         READ_ONLY, locked(by_uuid)))
        for f in spec.fields.values():
            self._field_methods(spec, f, get, write, locked)
        self.add(_method("session.login_with_password",
                         [("uname", STRING), ("pwd", STRING)], Ref("session"), READ_ONLY,
                         lambda ctx, u, p, version, originator:
                             self.sim.login(u, p, originator),
                         optional=[("version", STRING, ""), ("originator", STRING, "")],
                         session=False))
        self.add(_method("session.logout", [], NONE, READ_ONLY,
                         lambda ctx: self.sim.logout(ctx.ref)))

    # ------------------------------------------------------------ custom methods

    def _custom(self):
        sim, db, ops = self.sim, self.db, self.sim.vmops
        lock = db.lock
        vm = ("vm", Ref("VM"))

        def host_call_plugin(ctx, host, plugin, fn, args):
            with lock:
                uuid = db.get("host", host)["uuid"]
            return call_plugin(sim.host_runtime.get(uuid), ctx.ref, plugin, fn,
                               list(args.items()))
        self.add(_method("host.call_plugin",
                         [("host", Ref("host")), ("plugin", STRING), ("fn", STRING),
                          ("args", SMAP)], STRING, POOL_ADMIN, host_call_plugin))

        def host_enable(value):
            def run(ctx, host):
                with lock:
                    db.get("host", host)
                    db.update("host", host, {"enabled": value})
            return run
        self.add(_method("host.enable", [("host", Ref("host"))], NONE, POOL_OP,
                         host_enable(True)))
        self.add(_method("host.disable", [("host", Ref("host"))], NONE, POOL_OP,
                         host_enable(False)))

        # VM lifecycle
        self.add(_method("VM.start", [vm, ("start_paused", BOOL), ("force", BOOL)], NONE,
                         VM_OP, lambda ctx, v, p, f: ops.start(v, p, f)))
        self.add(_method("VM.start_on", [vm, ("host", Ref("host")), ("start_paused", BOOL),
                                         ("force", BOOL)], NONE, VM_POWER_ADMIN,
                         lambda ctx, v, h, p, f: ops.start(v, p, f, host=h)))
        for name in ("clean_shutdown", "hard_shutdown"):
            self.add(_method("VM." + name, [vm], NONE, VM_OP,
                             lambda ctx, v, op=name: ops.shutdown(v, op)))
        self.add(_method("VM.shutdown", [vm], NONE, VM_OP,
                         lambda ctx, v: ops.shutdown(v, "clean_shutdown")))
        for name in ("clean_reboot", "hard_reboot"):
            self.add(_method("VM." + name, [vm], NONE, VM_OP,
                             lambda ctx, v, op=name: ops.reboot(v, op)))
        for name in ("pause", "unpause"):
            self.add(_method("VM." + name, [vm], NONE, VM_OP,
                             lambda ctx, v, op=name: ops.pause(v, op)))
        self.add(_method("VM.pool_migrate", [vm, ("host", Ref("host")), ("options", SMAP)],
                         NONE, VM_POWER_ADMIN, lambda ctx, v, h, o: ops.pool_migrate(v, h, o)))
        self.add(_method("VM.clone", [vm, ("new_name", STRING)], Ref("VM"), VM_ADMIN,
                         lambda ctx, v, name: ops.clone(v, name)))
        self.add(_method("VM.snapshot", [vm, ("new_name", STRING)], Ref("VM"),
                         VM_POWER_ADMIN, lambda ctx, v, name: ops.snapshot(v, name)))
        self.add(_method("VM.destroy", [("self", Ref("VM"))], NONE, VM_ADMIN,
                         lambda ctx, v: ops.destroy(v)))
        self.add(_method("VM.set_VCPUs_number_live", [("self", Ref("VM")), ("nvcpu", INT)],
                         NONE, VM_ADMIN, lambda ctx, v, n: ops.set_vcpus_number_live(v, n)))
        self.add(_method("VM.set_memory_dynamic_range",
                         [("self", Ref("VM")), ("min", INT), ("max", INT)], NONE,
                         VM_POWER_ADMIN,
                         lambda ctx, v, lo, hi: ops.set_memory_dynamic_range(v, lo, hi)))
        for field in ("VCPUs_max", "VCPUs_at_startup"):
            self.add(_method("VM.set_" + field, [("self", Ref("VM")), ("value", INT)], NONE,
                             VM_ADMIN, lambda ctx, v, x, f=field: ops.set_vcpus(v, f, x)))

        # messages
        self.add(_method("message.create",
                         [("name", STRING), ("priority", INT),
                          ("cls", schema.CLASSES["message"].fields["cls"].type),
                          ("obj_uuid", STRING), ("body", STRING)], Ref("message"), POOL_OP,
                         lambda ctx, *a: sim.message_create(*a)))
        self.add(_method("message.destroy", [("self", Ref("message"))], NONE, POOL_OP,
                         lambda ctx, ref: sim.message_destroy(ref)))

        def since(ctx, when):
            with lock:
                return collections.OrderedDict(
                    (r, dict(o.rec)) for r, o in db.messages.items()
                    if wire.datetime_key(o.rec["timestamp"]) > wire.datetime_key(when))
        self.add(_method("message.get_since", [("since", schema.DATETIME)],
                         (RECORDS, "message"), READ_ONLY, since))

        def get_for(ctx, cls, obj_uuid, when):
            with lock:
                return collections.OrderedDict(
                    (r, dict(o.rec)) for r, o in db.messages.items()
                    if o.rec["cls"] == cls and o.rec["obj_uuid"] == obj_uuid
                    and wire.datetime_key(o.rec["timestamp"]) > wire.datetime_key(when))
        self.add(_method("message.get",
                         [("cls", schema.CLASSES["message"].fields["cls"].type),
                          ("obj_uuid", STRING), ("since", schema.DATETIME)],
                         (RECORDS, "message"), READ_ONLY, get_for))

        # secrets
        self.add(_method("secret.create", [("args", (STRUCT, "secret"))], Ref("secret"),
                         POOL_OP, lambda ctx, rec: sim.secret_create(rec)))
        self.add(_method("secret.introduce", [("uuid", STRING), ("value", STRING),
                                              ("other_config", SMAP)], Ref("secret"),
                         POOL_OP, lambda ctx, u, v, oc: sim.secret_create(
                             {"value": v, "other_config": oc}, uuid=u)))
        self.add(_method("secret.destroy", [("self", Ref("secret"))], NONE, POOL_OP,
                         lambda ctx, ref: sim.locked_destroy("secret", ref)))

        # events
        self.add(_method("event.from", [("classes", Set(STRING)), ("token", STRING),
                                        ("timeout", FLOAT)], ANY, READ_ONLY,
                         lambda ctx, c, t, to: events.event_from(
                             db, c, t, to, lambda table: sim.can_read(ctx, table), ctx.ref,
                             lambda: ctx.ref in sim.sessions)))

        def inject(ctx, cls, ref):
            with lock:
                return events.inject(db, cls, ref)
        self.add(_method("event.inject", [("class", STRING), ("ref", STRING)], STRING,
                         POOL_OP, inject))

    # ------------------------------------------------------------ dispatch

    def permission(self, m, args):
        """xapi's permission name: the lower-cased call name, with ``/key:<k>`` for
        map keys the datamodel guards with their own permission."""
        perm = m.name.lower()
        if m.keyed:
            names = [p[0] for p in m.params]
            key = args[names.index("key")]
            for pattern in m.keyed:
                hit = (key.startswith(pattern[:-1]) if pattern.endswith("*")
                       else key == pattern)
                if hit:
                    return perm + "/key:" + pattern.lower()
        return perm

    def _decode_arg(self, t, v):
        if isinstance(t, tuple) and t and t[0] == STRUCT:
            return self._decode_struct(t[1], v)
        return wire.decode(t, v)

    def _decode_struct(self, cls, v):
        if not isinstance(v, dict):
            raise wire.internal_failure("bad __structure")
        out = {}
        for f in schema.CLASSES[cls].fields.values():
            if f.name == "uuid":
                continue
            if f.name in v:
                out[f.name] = wire.decode(f.type, v[f.name])
            elif f.name == "value":
                raise ApiError("INTERNAL_ERROR",
                               ['Server_helpers.Dispatcher_FieldNotFound("%s")' % f.name])
        return out

    def call(self, name, params):
        """Dispatch one call; returns the wire Value or raises ApiError."""
        m = self.lookup(name)
        if m is None:
            raise ApiError("MESSAGE_METHOD_UNKNOWN", [name])
        given = len(params) - (1 if m.session else 0)
        need = len(m.params)
        if given < need or (given > need and not m.optional):
            raise ApiError("MESSAGE_PARAMETER_COUNT_MISMATCH", [name, str(need), str(given)])
        rest = params[1:] if m.session else params
        session_ref = wire.decode(STRING, params[0]) if m.session else None
        args = [self._decode_arg(t, v) for (_, t), v in zip(m.params, rest)]
        for i, (_, t, default) in enumerate(m.optional):
            j = need + i
            args.append(self._decode_arg(t, rest[j]) if j < len(rest) else default)
        ctx = Ctx(session_ref, None)
        if m.session:
            with self.db.lock:
                sess = self.sim.sessions.get(session_ref)
            if sess is None:
                raise ApiError("SESSION_INVALID", [session_ref])
            ctx = Ctx(session_ref, sess)
            if not sess.superuser and sess.rank > m.role:
                perm = self.permission(m, args)
                raise ApiError("RBAC_PERMISSION_DENIED", [
                    perm, "No permission in user session. (Roles with this permission: %s)"
                    % schema.roles_with(m.role)])
        result = m.handler(ctx, *args)
        return self.encode_result(m.result, result)

    def encode_result(self, t, v):
        if t[0] == RECORD:
            return wire.encode_record(t[1], v)
        if t[0] == RECORDS:
            return {ref: wire.encode_record(t[1], rec) for ref, rec in v.items()}
        if t == NONE:
            return ""
        return wire.encode(t, v)


Ctx = collections.namedtuple("Ctx", "ref session")


def new_session(user, rank, superuser, host, originator):
    rec = schema.default_record("session")
    rec.update({"uuid": str(uuidlib.uuid4()), "this_host": host, "auth_user_name": user,
                "is_local_superuser": superuser, "last_active": wire.now_datetime(),
                "validation_time": wire.now_datetime(), "originator": originator})
    return Session(rec, user, rank, superuser)

