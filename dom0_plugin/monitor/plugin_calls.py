"""Plugin functions the monitor answers itself, on the VM's warm connection.

The plugin process hands a call here before it imports anything heavy (XenAPI alone
costs a dom0 Python ~30 ms, paramiko ~40 ms): see monitor_client.serve_plugin_call.

The answer comes from operations.py itself, so the result strings, argument checks and
errors are the plugin's own: its function runs in a worker thread with
- a session that answers the few XAPI calls those functions make from the monitor's
  view of the VM (and posts their messages through the Outbox); any other call raises
  NotFast, and the plugin then does the work the normal way;
- the VM's warm DockerClient lent to transports.open_for (monitor_client.lend).
"""
from dom0_plugin import constants as C
from dom0_plugin import monitor_client, operations

FAST_FNS = C.LIFECYCLE_FNS + (C.FN_GET_INSPECT, C.FN_GET_TOP, C.FN_GET_PS, C.FN_GET_INFO,
                              C.FN_GET_VERSION, C.FN_GET_LOGS, C.FN_GET_STATS)
FORWARDED_ARG = "xscontainer-forwarded-from"


class NotFast(Exception):
    """Leave this call to the plugin's normal path."""


class _Api(object):
    def __init__(self, session, prefix):
        self._session = session
        self._prefix = prefix

    def __getattr__(self, name):
        if self._prefix:
            return self._session.method(self._prefix + "." + name)
        return _Api(self._session, name)


class ViewSession(object):
    """Looks like a XenAPI session to operations.py, for one VM the monitor follows."""

    def __init__(self, view, post_message):
        self.view = view
        self.post_message = post_message
        self.xenapi = _Api(self, "")

    def _record(self):
        view = self.view
        other = {C.KEY_MONITOR: C.VALUE_TRUE if view.registered else C.VALUE_FALSE,
                 C.KEY_TRANSPORT: view.transport, C.KEY_USERNAME: view.username}
        if view.hostkey:
            other[C.KEY_HOSTKEY] = view.hostkey
        return {"uuid": view.uuid, "name_label": view.name, "power_state": view.power_state,
                "resident_on": view.resident_on, "other_config": other,
                "guest_metrics": view.guest_metrics, "is_control_domain": False,
                "is_a_template": False, "is_a_snapshot": False}

    def method(self, name):
        view = self.view
        if name == "VM.get_by_uuid":
            return lambda uuid: view.ref if uuid == view.uuid else self._refuse(name)
        if name == "VM.get_record":
            return lambda ref: self._record() if ref == view.ref else self._refuse(name)
        if name == "VM.get_domid":
            return lambda ref: str(view.domid) if ref == view.ref else self._refuse(name)
        if name == "message.create":
            def create(msg_name, priority, cls, obj_uuid, body):
                self.post_message(msg_name, body)
                return "OpaqueRef:NULL"
            return create
        return lambda *args: self._refuse(name)

    @staticmethod
    def _refuse(name):
        raise NotFast("the plugin function needs %s" % name)


def check(fn, args):
    """The plugin arguments of a fast call (NotFast when the normal path must answer)."""
    if fn not in FAST_FNS or not isinstance(args, dict):
        raise NotFast("not a function the monitor answers")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in args.items()):
        raise NotFast("arguments are not strings")
    args = dict(args)
    args.pop(FORWARDED_ARG, None)
    return args


def run(fn, args, view, docker, post_message):
    """The plugin's result string for ``fn(args)``, computed by operations.py on the
    lent DockerClient (in a worker thread). XscError: the plugin's XAPI error."""
    session = ViewSession(view, post_message)
    with monitor_client.lend(view.uuid, docker):
        return operations.FUNCTIONS[fn](session, args)
