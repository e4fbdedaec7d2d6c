"""host.call_plugin run exactly as xapi runs host plugins, and the lab's XenAPIPlugin.

Every mapping of plugin behaviour to the caller's result is exercised with real plugin
processes (tests/lab/plugins) started by a real simulator process.
"""
import json
import os
import time

import pytest
import XenAPI

from lab import dom0_python
from lab.xapi import testing

HERE = os.path.dirname(os.path.abspath(__file__))
PLUGINS = os.path.join(HERE, "plugins")
DOM0_SITE = os.path.join(os.path.dirname(os.path.dirname(HERE)), "lab", "dom0_site")
XAPI_LOCAL = "/var/lib/xcp/xapi"
_XCP_EXISTED = os.path.exists("/var/lib/xcp")

pytestmark = pytest.mark.timeout(120)


def _py36():
    return dom0_python.find()


def _xenapi_site_for(workdir):
    """A directory holding the XenAPI client for dom0's Python: /tmp/s36 when prepared,
    else the PyPI package of this venv (pure Python, 3.6 compatible) linked in."""
    if os.path.isdir("/tmp/s36/XenAPI"):
        return "/tmp/s36"
    site = os.path.join(workdir, "site")
    os.makedirs(site, exist_ok=True)
    os.symlink(os.path.dirname(XenAPI.__file__), os.path.join(site, "XenAPI"))
    return site


def _install(src, dst_dir, name=None, shebang=None, mode=0o755):
    dst = os.path.join(dst_dir, name or os.path.basename(src))
    with open(src) as f:
        text = f.read()
    if shebang:
        text = "#!%s\n%s" % (shebang, text.split("\n", 1)[1])
    with open(dst, "w") as f:
        f.write(text)
    os.chmod(dst, mode)
    return dst


@pytest.fixture(scope="module")
def sim():
    workdir = testing.make_workdir()
    cfg = testing.basic_config(workdir, n_hosts=2, vms=[{
        "uuid": "5a1e0000-0000-4000-8000-000000000001", "name_label": "plugvm",
        "power_state": "Halted"}])
    h0, h1 = cfg["hosts"]
    d0 = h0["plugin_dir"]
    for name in ("echo", "respond"):
        _install(os.path.join(PLUGINS, name), d0)
    _install(os.path.join(PLUGINS, "respond"), d0, name="notexec", mode=0o644)
    with open(os.path.join(d0, "noshebang"), "w") as f:
        f.write("echo hi\n")
    os.chmod(os.path.join(d0, "noshebang"), 0o755)
    os.mkdir(os.path.join(d0, "adir"))
    # host1 plays a dom0 with Python 3.6: its plugins see the simulator's socket at
    # /var/lib/xcp/xapi through a private mount namespace (a tmpfs over /var/lib inside
    # it, so nothing is created on the machine).
    py36 = _py36()
    sock = cfg["unix_sockets"][0]
    h1["exec_prefix"] = [
        "unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
        "mount -t tmpfs lab /var/lib && mkdir -p /var/lib/xcp && : > %s && "
        "mount --bind %s %s && exec env -u PWD \"$0\" \"$@\"" % (XAPI_LOCAL, sock, XAPI_LOCAL)]
    h1["env"] = {"PATH": "/sbin:/usr/sbin:/bin:/usr/bin",
                 "PYTHONPATH": "%s:%s" % (_xenapi_site_for(workdir), DOM0_SITE)}
    if py36:
        _install(os.path.join(PLUGINS, "dom0py"), h1["plugin_dir"], shebang=py36)
    _install(os.path.join(PLUGINS, "echo"), h1["plugin_dir"])
    with testing.serving(workdir, cfg) as proc:
        proc.py36 = py36
        yield proc



@pytest.fixture(scope="module")
def hosts(sim, root):
    by_uuid = {h["uuid"]: i for i, h in enumerate(sim.config["hosts"])}
    refs = [None, None]
    for ref, rec in root.xenapi.host.get_all_records().items():
        refs[by_uuid[rec["uuid"]]] = ref
    return refs


def call(root, host, plugin, fn, args=None):
    return root.xenapi.host.call_plugin(host, plugin, fn, args or {})


def failure(root, host, plugin, fn, args=None):
    with pytest.raises(XenAPI.Failure) as e:
        call(root, host, plugin, fn, args)
    return e.value.details


# ---------------------------------------------------------------- how the plugin is run

def test_argv_is_xapis_method_call_xml(root, hosts, sim):
    out = json.loads(call(root, hosts[0], "echo", "the_fn", {"k": "v", "empty": "",
                                                              "amp": "a&b<c>\"d'e"}))
    assert len(out["argv"]) == 1
    session_ref = root._session
    assert out["argv"][0] == (
        "<methodCall><methodName>the_fn</methodName><params>"
        "<param><value>%s</value></param>"
        "<param><value><struct>"
        "<member><name>k</name><value>v</value></member>"
        "<member><name>empty</name><value/></member>"
        "<member><name>amp</name><value>a&amp;b&lt;c&gt;&quot;d'e</value></member>"
        "</struct></value></param></params></methodCall>" % session_ref)


def test_no_args_is_an_empty_struct(root, hosts):
    out = json.loads(call(root, hosts[0], "echo", "f", {}))
    assert out["argv"][0].endswith("<param><value><struct/></value></param></params>"
                                   "</methodCall>")


def test_environment_stdin_cwd_session(root, hosts, sim):
    out = json.loads(call(root, hosts[0], "echo", "env"))
    assert out["env"] == {"PATH": "/sbin:/usr/sbin:/bin:/usr/bin"}
    assert out["stdin"] == "/dev/null" and out["stdin_data"] == ""
    assert out["cwd"] == "/"
    assert out["session_leader"] is True
    assert out["sigpipe_ignored"] is True


def test_non_ascii_args_arrive_as_utf8(root, hosts):
    out = json.loads(call(root, hosts[0], "echo", "f", {"name": "caf\u00e9 \u2603"}))
    assert "<value>caf\u00e9 \u2603</value>" in out["argv"][0]


def test_exec_prefix_and_exec_dir(root, hosts, sim):
    # host1 runs its plugins through `unshare ... sh -c` and still passes one argument
    out = json.loads(call(root, hosts[1], "echo", "viaprefix", {"a": "1"}))
    assert len(out["argv"]) == 1 and "<methodName>viaprefix</methodName>" in out["argv"][0]
    assert out["env"] == sim.config["hosts"][1]["env"]


def test_plugins_do_not_block_other_calls(root, hosts, sim):
    import threading
    results = []
    other = testing.login(sim)      # one client connection per thread
    t = threading.Thread(target=lambda: results.append(call(other, hosts[0], "respond",
                                                            "slow")))
    t.start()
    time.sleep(0.3)
    t0 = time.time()
    root.xenapi.pool.get_all()
    assert time.time() - t0 < 1.0
    t.join(10)
    assert results == ["slow"]


def test_return_waits_for_exit_not_for_closed_output(root, hosts):
    # a child left holding stdout must not hold the call (xapi collects output in files)
    t0 = time.time()
    assert call(root, hosts[0], "respond", "daemon") == "detached"
    assert time.time() - t0 < 1.8


# ---------------------------------------------------------------- finding the plugin

@pytest.mark.parametrize("name", ["missing", "../echo", "echo/", "/echo", ".", "..", ""])
def test_missing_plugin(root, hosts, name):
    assert failure(root, hosts[0], name, "f") == ["XENAPI_MISSING_PLUGIN", name]


def test_plugin_of_another_host_is_missing(root, hosts):
    assert failure(root, hosts[1], "respond", "plain") == ["XENAPI_MISSING_PLUGIN",
                                                           "respond"]


@pytest.mark.parametrize("name", ["notexec", "noshebang", "adir"])
def test_exec_failures_are_non_zero_exit(root, hosts, name):
    assert failure(root, hosts[0], name, "plain") == ["XENAPI_PLUGIN_FAILURE",
                                                      "non-zero exit", "", ""]


def test_argument_over_the_kernel_cap(root, hosts):
    # One argv string may hold 131071 bytes: the XML around a big arg must fit.
    overhead = len(_xml_of(root, "f", {"x": "a"})) - 1
    fits = "a" * (131071 - overhead)
    out = json.loads(call(root, hosts[0], "echo", "f", {"x": fits}))
    assert len(out["argv"][0].encode()) == 131071
    assert failure(root, hosts[0], "echo", "f", {"x": fits + "a"}) == [
        "XENAPI_PLUGIN_FAILURE", "non-zero exit", "", ""]


def _xml_of(root, fn, args):
    from lab.xapi.xmllight import method_call
    return method_call(fn, root._session, list(args.items()))


# ---------------------------------------------------------------- mapping the output

@pytest.mark.parametrize("fn,expected", [
    ("plain", "hello & <world>"),
    ("typed", "typed"),
    ("emptystring", ""),
    ("blank", ""),          # xml-light2 drops whitespace-only text
    ("trailing", "first"),  # only the first root element is read
])
def test_success_strings(root, hosts, fn, expected):
    assert call(root, hosts[0], "respond", fn) == expected


@pytest.mark.parametrize("fn,param", [
    ("int", "XMLRPC.RunTimeTypeError(\"unbox: Element=int should contain 'string'\", _)"),
    ("bool", "XMLRPC.RunTimeTypeError(\"unbox: Element=boolean should contain 'string'\","
             " _)"),
    ("nostatus", "XMLRPC.RunTimeTypeError(\"Status\", _)"),
    ("emptyfailure", "XMLRPC.RunTimeTypeError(\"Empty array of error strings\", _)"),
])
def test_malformed_results_are_internal_errors(root, hosts, fn, param):
    assert failure(root, hosts[0], "respond", fn) == ["INTERNAL_ERROR", param]


def test_failure_is_passed_through(root, hosts):
    assert failure(root, hosts[0], "respond", "failure") == ["MY_ERROR", "a", "b c"]


def test_fault(root, hosts):
    assert failure(root, hosts[0], "respond", "fault") == [
        "XENAPI_PLUGIN_FAILURE", "fault", "7", "went wrong"]


def test_non_zero_exit(root, hosts):
    assert failure(root, hosts[0], "respond", "nonzero") == [
        "XENAPI_PLUGIN_FAILURE", "non-zero exit", "some output\n", "some error\n"]


def test_killed_by_signal(root, hosts):
    assert failure(root, hosts[0], "respond", "killed") == [
        "XENAPI_PLUGIN_FAILURE", "signal: SIGKILL", "before the kill\n",
        "err before the kill\n"]


def test_signal_without_a_name_in_xapi(root, hosts):
    # stdext's string_of_signal has no name for SIGBUS: xapi prints OCaml's number (-22)
    assert failure(root, hosts[0], "respond", "bus") == [
        "XENAPI_PLUGIN_FAILURE", "signal: (ocaml signal -22 with an unknown name)", "", ""]


@pytest.mark.parametrize("fn,stdout,error", [
    ("garbage", "this is not XML at all\n", "expected root element line 1"),
    ("truncated", "<methodResponse><params><param><value>", "unexpected end of input line 1"),
    ("nothing", "", "unexpected end of input line 1"),
])
def test_unparsable_output(root, hosts, fn, stdout, error):
    assert failure(root, hosts[0], "respond", fn) == [
        "XENAPI_PLUGIN_FAILURE", "failed to parse plugin output", stdout, error]


def test_unknown_fn_of_shell_plugin_exits_non_zero(root, hosts):
    assert failure(root, hosts[0], "respond", "nope") == [
        "XENAPI_PLUGIN_FAILURE", "non-zero exit", "", "unknown fn nope\n"]


# ---------------------------------------------------------------- rights

def test_read_only_user_cannot_call_plugins(sim, hosts):
    ro = testing.login(sim, "ro", "ropw")
    with pytest.raises(XenAPI.Failure) as e:
        ro.xenapi.host.call_plugin(hosts[0], "echo", "f", {})
    assert e.value.details == [
        "RBAC_PERMISSION_DENIED", "host.call_plugin",
        "No permission in user session. (Roles with this permission: pool-admin)"]


def test_bad_host_ref(root):
    assert failure(root, "OpaqueRef:nope", "echo", "f") == ["HANDLE_INVALID", "host",
                                                            "OpaqueRef:nope"]


# ---------------------------------------------------------------- XenAPIPlugin on dom0's 3.6

needs36 = pytest.mark.usefixtures("python36")


@needs36
def test_dom0_plugin_echo(root, hosts):
    assert json.loads(call(root, hosts[1], "dom0py", "echo", {"b": "2", "a": "1"})) == {
        "a": "1", "b": "2"}


@needs36
def test_dom0_plugin_failure(root, hosts):
    assert failure(root, hosts[1], "dom0py", "fail", {"why": "tests"}) == [
        "PLUGIN_SAYS_NO", "because", "tests"]


@needs36
def test_dom0_plugin_exception(root, hosts):
    assert failure(root, hosts[1], "dom0py", "boom") == [
        "XENAPI_PLUGIN_FAILURE", "boom", "ValueError", "kaboom"]


@needs36
def test_dom0_plugin_unknown_function(root, hosts):
    assert failure(root, hosts[1], "dom0py", "nosuchfn") == [
        "UNKNOWN_XENAPI_PLUGIN_FUNCTION", "nosuchfn"]


@needs36
def test_dom0_plugin_non_ascii_result_fails_under_36(root, hosts):
    details = failure(root, hosts[1], "dom0py", "nonascii")
    assert details[:3] == ["XENAPI_PLUGIN_FAILURE", "nonascii", "UnicodeEncodeError"]


@needs36
def test_dom0_plugin_non_string_result(root, hosts):
    assert failure(root, hosts[1], "dom0py", "notstring") == [
        "INTERNAL_ERROR",
        "XMLRPC.RunTimeTypeError(\"unbox: Element=int should contain 'string'\", _)"]


@needs36
def test_dom0_plugin_calls_back_with_the_callers_session(sim, root, hosts):
    assert call(root, hosts[1], "dom0py", "whoami") == "root"
    vm_uuid = sim.config["vms"][0]["uuid"]
    assert call(root, hosts[1], "dom0py", "tag_vm",
                {"vm": vm_uuid, "key": "from-plugin", "value": "yes"}) == "True"
    vm = root.xenapi.VM.get_by_uuid(vm_uuid)
    assert root.xenapi.VM.get_other_config(vm)["from-plugin"] == "yes"


@needs36
def test_dom0_plugin_invalid_session_is_a_fault_401(root, hosts):
    details = failure(root, hosts[1], "dom0py", "badsession")
    assert details[:3] == ["XENAPI_PLUGIN_FAILURE", "badsession", "Fault"]
    assert "401" in details[3]


def test_nothing_left_on_the_machine(root, hosts):
    # the dom0 namespace trick (tmpfs over /var/lib inside it) creates nothing outside
    call(root, hosts[1], "echo", "f")
    assert os.path.exists("/var/lib/xcp") == _XCP_EXISTED

