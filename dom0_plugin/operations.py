"""What each plugin function does. The plugin file only dispatches here; the CLI and the tests
reach these through `host.call_plugin`, as XO and XenCenter do.

Every function takes (session, args) and returns the result string (starting with `True`).
"""
import json
import logging

from dom0_plugin import constants as C
from dom0_plugin import documents, pool_key, transports, validate, xapi_vm
from dom0_plugin.errors import InvalidArgument, XscError

log = logging.getLogger(__name__)


def _ok(payload=""):
    return C.SUCCESS_PREFIX + payload


def _json(value):
    # ASCII only: dom0's Python 3.6 prints results on an ASCII stdout
    return _ok(json.dumps(value, ensure_ascii=True, sort_keys=True, separators=(",", ":")))


def _arg(args, name, required=True):
    value = args.get(name)
    if value is None or value == "":
        if required:
            raise InvalidArgument(name, "missing: pass it as args:%s=..." % name)
        return None
    return value


def _managed_vm(session, args, registered=True):
    vm = xapi_vm.lookup(session, _arg(args, C.ARG_VMUUID))
    if registered:
        xapi_vm.require_registered(vm)
    xapi_vm.require_running(vm)
    return vm


# ---------------------------------------------------------------- registration

def register(session, args):
    vm = xapi_vm.lookup(session, _arg(args, C.ARG_VMUUID))
    mode = args.get(C.ARG_MODE) or None
    if mode is not None and mode not in C.TRANSPORT_MODES:
        raise InvalidArgument(C.ARG_MODE, "must be one of %s" % ", ".join(C.TRANSPORT_MODES))
    if mode is None:
        # no choice made: the agent when the guest advertises it, SSH otherwise
        running = vm.power_state == "Running"
        mode = (C.MODE_AGENT if running and transports.agent_advertised(session, vm)
                else vm.other_config.get(C.KEY_TRANSPORT, C.MODE_SSH))
    if (mode == C.MODE_SSH and vm.power_state == "Running"
            and not vm.other_config.get(C.KEY_HOSTKEY)):
        # over SSH only a verified host key is ever sent a credential: `prepare` first
        transports.check_unpinned(session, vm)
    xapi_vm.set_key(session, vm.ref, C.KEY_TRANSPORT, mode, vm.other_config)
    xapi_vm.set_key(session, vm.ref, C.KEY_MONITOR, C.VALUE_TRUE, vm.other_config)
    if vm.power_state == "Running":
        vm = xapi_vm.lookup(session, vm.uuid)
        try:
            with transports.open_for(session, vm) as t:
                refresh_documents(session, vm, t.docker())
        except XscError as e:
            # registration stands; the monitor keeps trying and shows why it can't
            log.warning("registered %s but could not read its containers yet: %s", vm.uuid, e)
    return _ok()


def deregister(session, args):
    vm = xapi_vm.lookup(session, _arg(args, C.ARG_VMUUID))
    xapi_vm.set_key(session, vm.ref, C.KEY_MONITOR, C.VALUE_FALSE, vm.other_config)
    for key in C.DOCUMENT_KEYS + C.STATUS_KEYS:
        xapi_vm.remove_key(session, vm.ref, key, vm.other_config)
    return _ok()


def refresh_documents(session, vm, docker):
    """Write docker_ps / docker_info / docker_version when they changed (single keys)."""
    docs = {
        C.KEY_DOCKER_PS: documents.render_ps(docker.ps(all=True)),
        C.KEY_DOCKER_INFO: documents.render_info(docker.info()),
        C.KEY_DOCKER_VERSION: documents.render_version(docker.version()),
    }
    for key, value in docs.items():
        xapi_vm.set_key(session, vm.ref, key, value, vm.other_config)


# ---------------------------------------------------------------- container lifecycle

def _lifecycle(action):
    def handler(session, args):
        vm = _managed_vm(session, args)
        ref = validate.container_ref(_arg(args, C.ARG_CONTAINER), C.ARG_CONTAINER)
        try:
            with transports.open_for(session, vm) as t:
                docker = t.docker()
                getattr(docker, action)(docker.resolve(ref))
        except XscError as e:
            if e.code in C.DOCKER_FAILURE_CODES:
                xapi_vm.post_message(session, vm.uuid, C.MESSAGE_OPERATION_FAILED,
                                     "Container %s of VM %s: %s failed: %s"
                                     % (ref, vm.name, action, e.message()))
            raise
        return _ok()
    handler.__name__ = action
    handler.__doc__ = "%s a container (args: vmuuid, container)" % action
    return handler


start = _lifecycle("start")
stop = _lifecycle("stop")
restart = _lifecycle("restart")
pause = _lifecycle("pause")
unpause = _lifecycle("unpause")


# ---------------------------------------------------------------- queries

def _with_docker(session, args, fn):
    vm = _managed_vm(session, args)
    with transports.open_for(session, vm) as t:
        return fn(t.docker())


def get_inspect(session, args):
    ref = validate.container_ref(_arg(args, C.ARG_OBJECT), C.ARG_OBJECT)
    return _ok(_with_docker(session, args,
                            lambda d: documents.render_inspect(d.inspect(d.resolve(ref)))))


def get_top(session, args):
    ref = validate.container_ref(_arg(args, C.ARG_OBJECT), C.ARG_OBJECT)
    return _ok(_with_docker(session, args,
                            lambda d: documents.render_top(d.top(d.resolve(ref)))))


def get_ps(session, args):
    return _json(_with_docker(session, args, lambda d: summarise_ps(d.ps(all=True))))


def summarise_ps(containers):
    """The machine-readable container list of get_ps (documented in the README)."""
    out = []
    for c in containers:
        names = c.get("Names") or []
        out.append({
            "id": c.get("Id", ""),
            "name": names[0].lstrip("/") if names else "",
            "image": c.get("Image", ""),
            "command": c.get("Command", ""),
            "created": c.get("Created", 0),
            "state": c.get("State", ""),
            "status": documents.normalise_status(c),
            "ports": c.get("Ports") or [],
            "labels": c.get("Labels") or {},
        })
    return out


def get_info(session, args):
    return _json(_with_docker(session, args, lambda d: d.info()))


def get_version(session, args):
    return _json(_with_docker(session, args, lambda d: d.version()))


def get_logs(session, args):
    ref = validate.container_ref(_arg(args, C.ARG_CONTAINER), C.ARG_CONTAINER)
    tail = validate.logs_tail(args.get("tail") or "100")
    since = validate.logs_since(args.get("since") or "0")

    def read(d):
        cid = d.resolve(ref)
        logs = d.logs(cid, tail=tail, since=since or None, max_bytes=C.LOGS_MAX_BYTES)
        return {"container": cid, "truncated": logs.truncated,
                "logs": "".join(text for _stream, text in logs.frames)}
    return _json(_with_docker(session, args, read))


def get_stats(session, args):
    ref = args.get(C.ARG_CONTAINER)

    def read(d):
        if ref:
            ids = [d.resolve(validate.container_ref(ref, C.ARG_CONTAINER))]
        else:
            ids = [c["Id"] for c in d.ps(all=False)][:C.STATS_MAX_CONTAINERS]
        return {cid: d.stats(cid)._asdict() for cid in ids}
    return _json(_with_docker(session, args, read))


# ---------------------------------------------------------------- keys and enrolment

def get_public_key(session, args):
    return _ok(pool_key.public_line(pool_key.private_key(session)))


def prepare(session, args):
    """Enrol a running VM: verify its host key, authorize the pool key for a user, check
    Docker, pin the host key. The password may come as ``password_secret`` (the uuid of
    a XAPI secret the caller created: read once, then destroyed) so that it never
    travels in the call's arguments."""
    from dom0_plugin import enrol
    vm = xapi_vm.lookup(session, _arg(args, C.ARG_VMUUID))
    xapi_vm.require_running(vm)
    username = validate.username(_arg(args, C.ARG_USERNAME))
    fingerprint = args.get(C.ARG_FINGERPRINT) or None
    if fingerprint is not None:
        fingerprint = enrol.normalise_fingerprint(fingerprint)
    trust = args.get(C.ARG_TRUST) or None
    if trust not in (None, C.TRUST_FIRST_USE):
        raise InvalidArgument(C.ARG_TRUST, "the only value is %s" % C.TRUST_FIRST_USE)
    if args.get(C.ARG_PASSWORD_SECRET) and args.get(C.ARG_PASSWORD):
        raise InvalidArgument(C.ARG_PASSWORD_SECRET, "give password or password_secret, "
                              "not both")
    if args.get(C.ARG_PASSWORD_SECRET):
        password = xapi_vm.take_secret(session, args[C.ARG_PASSWORD_SECRET])
    else:
        password = args.get(C.ARG_PASSWORD) or None
    result = enrol.prepare(session, vm, username, password, fingerprint, trust)
    return _json(result)


FUNCTIONS = {
    C.FN_REGISTER: register, C.FN_DEREGISTER: deregister,
    C.FN_START: start, C.FN_STOP: stop, C.FN_RESTART: restart, C.FN_PAUSE: pause,
    C.FN_UNPAUSE: unpause, C.FN_GET_INSPECT: get_inspect, C.FN_GET_TOP: get_top,
    C.FN_GET_PS: get_ps, C.FN_GET_INFO: get_info, C.FN_GET_VERSION: get_version,
    C.FN_GET_LOGS: get_logs, C.FN_GET_STATS: get_stats,
    C.FN_GET_PUBLIC_KEY: get_public_key, C.FN_PREPARE: prepare,
}
# Functions that need nothing of a particular VM (run on whichever host is called).
POOL_WIDE = (C.FN_GET_PUBLIC_KEY,)
