"""The simulator: configuration, first-start population, sessions, and one XML-RPC call
from body to response (with its log line)."""
import json
import os
import threading
import time
import uuid as uuidlib

from . import schema, wire
from .api import Api, new_session
from .db import Database
from .plugins import DEFAULT_ENV, HostRuntime
from .schema import NULL_REF
from .vmops import VmOps, allowed_operations
from .wire import ApiError

# Per request thread: whether the call came over a Unix socket (set by the HTTP server).
LOCAL = threading.local()


def _coerce(t, v):
    """A config value (JSON, ints often as strings) in the stored form of type ``t``."""
    kind = t[0]
    if kind == "int":
        return int(v)
    if kind == "float":
        return float(v)
    if kind == "bool":
        return v if isinstance(v, bool) else str(v).lower() in ("true", "1")
    if kind == "map":
        return {str(k): str(x) for k, x in (v or {}).items()}
    if kind == "set":
        return [str(x) for x in (v or [])]
    if kind == "datetime":
        return wire.parse_datetime(v)
    if kind == "ref":
        return v or NULL_REF
    return "" if v is None else str(v)


def software_version(name):
    return {"product_brand": "XCP-ng", "product_version": "8.3.0",
            "product_version_text": "8.3", "product_version_text_short": "8.3",
            "platform_name": "XCP", "platform_version": "3.4.0", "build_number": "lab",
            "xapi": "24.19", "xapi_build": "24.19.2", "xen": "4.17.5", "hostname": name,
            "network_backend": "openvswitch", "dbv": "lab"}


class Simulator(object):
    """Everything one ``python -m lab.xapi`` process serves."""

    def __init__(self, config):
        self.config = config
        for key in ("db", "log", "port_file"):
            if config.get(key) and os.path.dirname(config[key]):
                os.makedirs(os.path.dirname(config[key]), exist_ok=True)
        self.db = Database(config.get("db"))
        self.sessions = {}
        self.users = config.get("users", {})
        self.vm_hook = config.get("vm_hook") or None
        self.host_runtime = {}
        for h in config.get("hosts", []):
            self.host_runtime[h["uuid"]] = HostRuntime(
                h.get("plugin_dir") or "/nonexistent",
                list(h.get("exec_prefix") or []),
                h.get("plugin_exec_dir") or h.get("plugin_dir") or "/etc/xapi.d/plugins",
                dict(h["env"]) if h.get("env") is not None else dict(DEFAULT_ENV))
        self.vmops = VmOps(self)
        if not self.db.load():
            with self.db.lock:
                self._populate()
            self.db.flush()
        self.api = Api(self)
        self._log_lock = threading.Lock()
        self._log = open(config["log"], "a") if config.get("log") else None

    # ------------------------------------------------------------ first start

    def _populate(self):
        cfg = self.config
        host_refs = {}
        for h in cfg.get("hosts", []):
            rec = schema.default_record("host")
            rec.update({"uuid": h["uuid"], "name_label": h.get("name_label", ""),
                        "name_description": h.get("name_description", ""),
                        "address": h.get("address", "127.0.0.1"),
                        "hostname": h.get("hostname", h.get("name_label", "")),
                        "software_version": dict(h.get("software_version") or
                                                 software_version(h.get("name_label", "")))})
            ref = self.db.create("host", rec)
            host_refs[h["uuid"]] = ref
            dom0 = schema.default_record("VM")
            dom0.update({"uuid": h.get("dom0_uuid") or str(uuidlib.uuid4()),
                         "name_label": "Control domain on host: %s" % rec["name_label"],
                         "name_description": "The domain which manages physical devices "
                                             "and manages other domains",
                         "is_control_domain": True, "power_state": "Running",
                         "resident_on": ref, "domid": 0, "VCPUs_max": 4,
                         "VCPUs_at_startup": 4, "memory_static_max": 4 << 30,
                         "memory_dynamic_max": 4 << 30, "memory_dynamic_min": 4 << 30,
                         "memory_static_min": 4 << 30, "memory_target": 4 << 30,
                         "domain_type": "pv"})
            dom0["allowed_operations"] = allowed_operations(dom0)
            dom0_ref = self.db.create("VM", dom0)
            self.db.update("host", ref, {"control_domain": dom0_ref})
        pool = schema.default_record("pool")
        p = cfg.get("pool", {})
        pool.update({"uuid": p.get("uuid") or str(uuidlib.uuid4()),
                     "name_label": p.get("name_label", ""),
                     "name_description": p.get("name_description", ""),
                     "master": host_refs[cfg["hosts"][0]["uuid"]] if cfg.get("hosts")
                     else NULL_REF})
        self.db.create("pool", pool)
        for v in cfg.get("vms", []):
            self._create_vm(v, host_refs)

    def _create_vm(self, v, host_refs):
        rec = schema.default_record("VM")
        fields = schema.VM.fields
        for k, val in v.items():
            if k in fields and k not in ("resident_on", "guest_metrics", "snapshots"):
                rec[k] = _coerce(fields[k].type, val)
        rec["uuid"] = v.get("uuid") or str(uuidlib.uuid4())
        if v.get("affinity") in host_refs:          # a host uuid in the config
            rec["affinity"] = host_refs[v["affinity"]]
        if "memory_static_min" not in v:
            rec["memory_static_min"] = min(rec["memory_dynamic_min"], rec["memory_static_max"])
        if "memory_dynamic_max" in v and "memory_static_max" not in v:
            rec["memory_static_max"] = max(rec["memory_static_max"], rec["memory_dynamic_max"])
        if rec["power_state"] != "Halted":
            host = host_refs.get(v.get("host_uuid")) or self.pool_master()
            rec.update({"resident_on": host, "domid": self.db.alloc_domid(),
                        "memory_target": rec["memory_dynamic_max"]})
        rec["allowed_operations"] = allowed_operations(rec)
        self.db.create("VM", rec)

    # ------------------------------------------------------------ helpers for the API

    def pool_master(self):
        pools = self.db.items("pool")
        return pools[0][1]["master"] if pools else NULL_REF

    def login(self, user, password, originator):
        u = self.users.get(user)
        local_root = user == "root" and getattr(LOCAL, "unix", False)
        if u is None or (u.get("password") != password and not local_root):
            raise ApiError("SESSION_AUTHENTICATION_FAILED", [user, "Authentication failure"])
        rank = schema.role_rank(u.get("role", "read-only"))
        with self.db.lock:
            s = new_session(user, rank, user == "root", self.pool_master(), originator)
            ref = "OpaqueRef:" + str(uuidlib.uuid4())
            self.sessions[ref] = s
        return ref

    def logout(self, ref):
        with self.db.lock:
            self.sessions.pop(ref, None)
            self.db.cond.notify_all()     # wakes event.from calls of this session

    def can_read(self, ctx, table):
        s = ctx.session
        return s.superuser or s.rank <= schema.CLASSES[table].read_role

    def message_create(self, name, priority, cls, obj_uuid, body):
        table = {"VM": "VM", "Host": "host", "Pool": "pool"}.get(cls)
        with self.db.lock:
            if table is None or not any(r["uuid"] == obj_uuid
                                        for _, r in self.db.items(table)):
                raise ApiError("UUID_INVALID", [cls, obj_uuid])
            rec = schema.default_record("message")
            rec.update({"uuid": str(uuidlib.uuid4()), "name": name, "priority": priority,
                        "cls": cls, "obj_uuid": obj_uuid, "timestamp": wire.now_datetime(),
                        "body": body})
            return self.db.message_create(rec)

    def message_destroy(self, ref):
        with self.db.lock:
            self.db.message_destroy(ref)

    def secret_create(self, fields, uuid=None):
        with self.db.lock:
            rec = schema.default_record("secret")
            rec.update(fields)
            rec["uuid"] = uuid or str(uuidlib.uuid4())
            return self.db.create("secret", rec)

    def locked_destroy(self, table, ref):
        with self.db.lock:
            self.db.destroy(table, ref)

    # ------------------------------------------------------------ one request

    def handle(self, body):
        """Answer one XML-RPC request body; raises ValueError for a malformed one."""
        try:
            method, params = wire.parse_call(body)
        except Exception as e:
            self.log("-", 0.0, "MALFORMED_REQUEST")
            raise ValueError("Xmlrpc.Parse_error(%s)" % type(e).__name__)
        t0 = time.time()
        if method == "system.listMethods":
            # xapi answers this one with the bare array, not a Status envelope
            self.log(method, 0.0, "OK")
            return wire.response_body(sorted(m.name for m in self.api.methods.values()))
        try:
            envelope = wire.success(self.api.call(method, params))
            outcome = "OK"
        except ApiError as e:
            envelope = wire.failure(e.description)
            outcome = e.code
        except Exception as e:   # a bug of ours: still an answer, never a traceback page
            envelope = wire.failure(["INTERNAL_ERROR", "%s: %s" % (type(e).__name__, e)])
            outcome = "INTERNAL_ERROR"
        self.log(method, time.time() - t0, outcome)
        return wire.response_body(envelope)

    def log(self, method, seconds, outcome):
        if self._log is None:
            return
        safe = "".join(c if c.isprintable() and c != " " else "?" for c in method)[:120]
        line = "%s %s %.1fms %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), safe,
                                       seconds * 1000.0, outcome)
        with self._log_lock:
            self._log.write(line)
            self._log.flush()

    def close(self):
        self.db.stop_flusher()
        if self._log:
            self._log.close()


def load_config(path):
    with open(path) as f:
        return json.load(f)

