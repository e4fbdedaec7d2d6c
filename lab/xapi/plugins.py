"""``host.call_plugin`` as xapi runs it (Xapi_plugins.call_plugin + forkexecd).

- The plugin must be an entry of the host's plugin directory (a name with ``/`` or
  ``..`` can never be one): ``XENAPI_MISSING_PLUGIN [name]`` otherwise.
- It is executed with exactly one argument, the methodCall XML, with exactly the host's
  environment, stdin ``/dev/null``, cwd ``/``, in a new session (forkexecd's setsid), with
  SIGPIPE ignored (forkexecd's disposition). stdout and stderr go to files, not pipes, so
  xapi waits for the process to exit, not for its output to close. No timeout.
- An exec failure (not executable, no interpreter line, argv string over the kernel's
  131071-byte cap) is a child exit of 126 (127 for a missing file): xapi reports
  ``XENAPI_PLUGIN_FAILURE ["non-zero exit", "", ""]``.
"""
import collections
import os
import subprocess
import tempfile

from .wire import ApiError
from .xmllight import method_call, decode_plugin_output

DEFAULT_ENV = {"PATH": "/sbin:/usr/sbin:/bin:/usr/bin"}

HostRuntime = collections.namedtuple("HostRuntime",
                                     "plugin_dir exec_prefix plugin_exec_dir env")

# xapi prints a signal with stdext's Unixext.string_of_signal, which knows these names;
# other signals show OCaml's own number for them.
_OCAML_SIGNAL_NAMES = {
    6: "SIGABRT", 14: "SIGALRM", 8: "SIGFPE", 1: "SIGHUP", 4: "SIGILL", 2: "SIGINT",
    9: "SIGKILL", 13: "SIGPIPE", 3: "SIGQUIT", 11: "SIGSEGV", 15: "SIGTERM",
    10: "SIGUSR1", 12: "SIGUSR2", 17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP",
    21: "SIGTTIN", 22: "SIGTTOU", 26: "SIGVTALRM", 27: "SIGPROF",
}
# Linux signal number -> OCaml's negative constant for signals OCaml knows but
# Unixext.string_of_signal does not name.
_OCAML_SIGNAL_NUMBERS = {20: -17, 7: -22, 29: -23, 31: -24, 5: -25, 23: -26, 24: -27,
                         25: -28}


def signal_text(signum):
    """The first XENAPI_PLUGIN_FAILURE parameter xapi gives for a plugin killed by
    ``signum`` (a Linux signal number)."""
    name = _OCAML_SIGNAL_NAMES.get(signum)
    if name is None:
        name = "(ocaml signal %d with an unknown name)" % _OCAML_SIGNAL_NUMBERS.get(
            signum, signum)
    return "signal: " + name


def _exec_would_fail(path):
    # What execve would refuse, checked on the host's view of the file so that an exec
    # prefix (nsenter, a shell) cannot turn it into a different error.
    try:
        if not os.path.isfile(path) or not os.access(path, os.X_OK):
            return True
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return True
    return not (head.startswith(b"#!") or head == b"\x7fELF")


def _failure(kind, out=b"", err=b""):
    return ApiError("XENAPI_PLUGIN_FAILURE", [kind, out.decode("utf-8", "replace"),
                                              err.decode("utf-8", "replace")])


def call_plugin(host, session_ref, plugin, fn, args):
    """Run ``plugin`` on ``host`` (a HostRuntime, or None for a host without one) and
    return its result string or raise the ApiError xapi would return."""
    try:
        names = os.listdir(host.plugin_dir) if host else []
    except OSError:
        names = []
    if plugin not in names:
        raise ApiError("XENAPI_MISSING_PLUGIN", [plugin])
    xml = method_call(fn, session_ref, args)
    if _exec_would_fail(os.path.join(host.plugin_dir, plugin)):
        raise _failure("non-zero exit")
    argv = list(host.exec_prefix) + [host.plugin_exec_dir.rstrip("/") + "/" + plugin, xml]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    env=dict(host.env), cwd="/", close_fds=True,
                                    start_new_session=True, restore_signals=False)
        except OSError:
            # forkexecd's child exits 127 (ENOENT) or 126 (anything else, E2BIG past the
            # kernel's MAX_ARG_STRLEN included): either way xapi says "non-zero exit"
            raise _failure("non-zero exit")
        rc = proc.wait()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if rc < 0:
        raise _failure(signal_text(-rc), stdout, stderr)
    if rc > 0:
        raise _failure("non-zero exit", stdout, stderr)
    return decode_plugin_output(stdout)

