"""The plumbing between xapi and operations: routing to the VM's host, error mapping, logging.

Used by the plugin file /etc/xapi.d/plugins/xscontainer (which stays thin).
"""
import logging
import logging.handlers
import sys
import warnings

from dom0_plugin import constants as C
from dom0_plugin import inventory, operations, xapi_vm
from dom0_plugin.errors import XscError

log = logging.getLogger("xscontainer")
LOG_FILE = "/var/log/xscontainer-plugin.log"
FORWARDED = "xscontainer-forwarded-from"


def setup_logging(path=LOG_FILE):
    # dom0's cryptography warns about Python 3.6 on every import: not the admin's concern
    warnings.filterwarnings("ignore", message=".*Python 3.6.*")
    root = logging.getLogger()
    if root.handlers:
        return
    try:
        # logrotate (the pack's /etc/logrotate.d entry) rotates it: reopen when it moves
        handler = logging.handlers.WatchedFileHandler(path)
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s "
                                           "%(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _forward(session, vm, fn, args):
    """Run fn on the host the VM is resident on; its answer or error comes back unchanged."""
    here = inventory.this_host_uuid()
    if args.get(FORWARDED):
        raise XscError(C.ERR_VM_UNREACHABLE,
                       [vm.uuid, "forwarded call reached a host the VM is not resident on"])
    fwd = dict(args)
    fwd[FORWARDED] = here
    log.info("%s for VM %s: forwarding to host %s", fn, vm.uuid, vm.resident_on)
    return session.xenapi.host.call_plugin(vm.resident_on, C.PLUGIN_NAME, fn, fwd)


def _needs_forwarding(session, fn, args):
    if fn in operations.POOL_WIDE or C.ARG_VMUUID not in args:
        return None
    try:
        vm = xapi_vm.lookup(session, args[C.ARG_VMUUID])
    except XscError:
        return None  # the local handler reports it
    if vm.power_state != "Running" or vm.resident_on == xapi_vm.NULL_REF:
        return None
    here = session.xenapi.host.get_by_uuid(inventory.this_host_uuid())
    return vm if vm.resident_on != here else None


def handler(fn, failure_cls):
    """Wrap operations.FUNCTIONS[fn] for XenAPIPlugin.dispatch."""
    impl = operations.FUNCTIONS[fn]

    def call(session, args):
        args = dict(args or {})
        try:
            vm = _needs_forwarding(session, fn, args)
            if vm is not None:
                return _forward(session, vm, fn, args)
            args.pop(FORWARDED, None)
            result = impl(session, args)
            log.info("%s %s: ok", fn, args.get(C.ARG_VMUUID, ""))
            return result
        except XscError as e:
            log.info("%s %s: %s", fn, args.get(C.ARG_VMUUID, ""), e)
            raise failure_cls(e.code, e.params)
        except Exception as e:
            details = getattr(e, "details", None)
            if isinstance(details, list) and details:  # a XAPI failure (e.g. forwarded)
                raise failure_cls(str(details[0]), [str(d) for d in details[1:]])
            log.exception("%s failed unexpectedly", fn)
            raise
    call.__name__ = fn
    return call


def repair_argv(argv):
    """xapi passes UTF-8 text, but without a locale Python 3.6 decodes argv as ASCII with
    surrogate escapes, which XML-RPC parsing then chokes on: decode it as the UTF-8 it is."""
    import os
    for i in range(1, len(argv)):
        argv[i] = os.fsencode(argv[i]).decode("utf-8", "replace")


def ascii_envelope():
    """Results hold documents in UTF-8; dom0's Python 3.6 stdout is ASCII (no locale).
    The XML-RPC methodResponse XenAPIPlugin prints is the channel that must be ASCII: it
    carries any other character as a numeric reference, which xapi's parser decodes back
    (the documents themselves keep the characters)."""
    import io
    sys.stdout.flush()
    sys.stdout = io.TextIOWrapper(sys.stdout.buffer, encoding="ascii",
                                  errors="xmlcharrefreplace", line_buffering=True)


def table(failure_cls):
    setup_logging()
    return {fn: handler(fn, failure_cls) for fn in operations.FUNCTIONS}
