"""The simulator's XenAPI: sessions, generic calls, errors, RBAC, messages, secrets and
HTTP behaviour, through the PyPI XenAPI client (TCP and Unix socket) and raw HTTP."""
import http.client
import socket
import xmlrpc.client

import pytest
import XenAPI

from lab.xapi import testing

pytestmark = pytest.mark.timeout(60)

VM_UUID = "0a000000-0000-4000-8000-000000000001"


@pytest.fixture(scope="module")
def sim():
    workdir = testing.make_workdir()
    cfg = testing.basic_config(workdir, vms=[
        {"uuid": VM_UUID, "name_label": "vm-a", "host_uuid": None, "power_state": "Halted",
         "VCPUs_max": "4", "VCPUs_at_startup": "2", "memory_static_max": str(2 << 30),
         "memory_dynamic_max": str(1 << 30), "memory_dynamic_min": str(512 << 20),
         "other_config": {"preset": "1"}}])
    cfg["users"]["operator"] = {"password": "oppw", "role": "vm-operator"}
    with testing.serving(workdir, cfg) as proc:
        yield proc



@pytest.fixture(scope="module")
def ro(sim):
    return testing.login(sim, "ro", "ropw")


@pytest.fixture(scope="module")
def vm(root):
    return root.xenapi.VM.get_by_uuid(VM_UUID)


def details(f, *args):
    with pytest.raises(XenAPI.Failure) as e:
        f(*args)
    return e.value.details


def raw_call(sim, method, params):
    """One XML-RPC call without the XenAPI client's session handling."""
    proxy = xmlrpc.client.ServerProxy(sim.url, allow_none=True)
    return getattr(proxy, method)(*params)


# ---------------------------------------------------------------- sessions

def test_login_over_tcp_and_unix_socket(sim):
    for unix in (False, True):
        s = testing.login(sim, unix=unix)
        pools = s.xenapi.pool.get_all()
        assert len(pools) == 1
        s.xenapi.session.logout()


def test_wrong_password_and_unknown_user(sim):
    for user, pw in (("root", "nope"), ("nobody", "x")):
        s = XenAPI.Session(sim.url)
        assert details(s.xenapi.login_with_password, user, pw, "1.0", "t") == [
            "SESSION_AUTHENTICATION_FAILED", user, "Authentication failure"]


def test_logout_invalidates_the_session(sim):
    s = testing.login(sim)
    ref = s._session
    s.xenapi.session.logout()
    assert raw_call(sim, "pool.get_all", [ref]) == {
        "Status": "Failure", "ErrorDescription": ["SESSION_INVALID", ref]}


def test_bogus_session(sim):
    assert raw_call(sim, "VM.get_all", ["OpaqueRef:NULL"])["ErrorDescription"] == [
        "SESSION_INVALID", "OpaqueRef:NULL"]


def test_session_fields(sim, root):
    ref = root._session
    pool = root.xenapi.pool.get_all()[0]
    assert root.xenapi.session.get_this_host(ref) == root.xenapi.pool.get_master(pool)
    assert root.xenapi.session.get_auth_user_name(ref) == "root"
    assert root.xenapi.session.get_is_local_superuser(ref) is True


def test_login_parameter_defaults(sim):
    # version and originator are optional: two parameters are enough
    res = raw_call(sim, "session.login_with_password", ["root", "rootpw"])
    assert res["Status"] == "Success" and res["Value"].startswith("OpaqueRef:")
    res = raw_call(sim, "session.login_with_password", ["root"])
    assert res["ErrorDescription"] == ["MESSAGE_PARAMETER_COUNT_MISMATCH",
                                       "session.login_with_password", "2", "1"]


# ---------------------------------------------------------------- generic calls

def test_pool_hosts_and_control_domains(sim, root):
    pool = root.xenapi.pool.get_all()[0]
    rec = root.xenapi.pool.get_record(pool)
    assert rec["name_label"] == "test pool"
    assert rec["uuid"] == sim.config["pool"]["uuid"]
    master = rec["master"]
    assert root.xenapi.host.get_uuid(master) == sim.config["hosts"][0]["uuid"]
    for h in root.xenapi.host.get_all():
        hr = root.xenapi.host.get_record(h)
        assert hr["enabled"] is True and hr["API_version_major"] == "2"
        dom0 = hr["control_domain"]
        d = root.xenapi.VM.get_record(dom0)
        assert d["is_control_domain"] and d["domid"] == "0"
        assert d["power_state"] == "Running" and d["resident_on"] == h
        assert dom0 in hr["resident_VMs"]
    assert root.xenapi.host.get_by_name_label("host1") == [
        h for h in root.xenapi.host.get_all() if root.xenapi.host.get_name_label(h) == "host1"]


def test_vm_record_from_config(root, vm):
    rec = root.xenapi.VM.get_record(vm)
    assert rec["uuid"] == VM_UUID and rec["name_label"] == "vm-a"
    assert rec["power_state"] == "Halted" and rec["domid"] == "-1"
    assert rec["resident_on"] == "OpaqueRef:NULL"
    assert rec["VCPUs_max"] == "4" and rec["VCPUs_at_startup"] == "2"
    assert rec["memory_static_max"] == str(2 << 30)
    assert rec["other_config"] == {"preset": "1"}
    assert rec["is_a_template"] is False and rec["is_control_domain"] is False
    assert root.xenapi.VM.get_by_name_label("vm-a") == [vm]
    assert vm in root.xenapi.VM.get_all()
    assert root.xenapi.VM.get_all_records()[vm]["uuid"] == VM_UUID


def test_setters_and_maps(root, vm):
    root.xenapi.VM.set_name_description(vm, "described")
    assert root.xenapi.VM.get_name_description(vm) == "described"
    root.xenapi.VM.add_to_other_config(vm, "k1", "v1")
    assert details(root.xenapi.VM.add_to_other_config, vm, "k1", "other") == [
        "MAP_DUPLICATE_KEY", "VM", "other_config", vm, "k1"]
    root.xenapi.VM.remove_from_other_config(vm, "k1")
    root.xenapi.VM.remove_from_other_config(vm, "never-there")   # not an error in xapi
    assert "k1" not in root.xenapi.VM.get_other_config(vm)
    root.xenapi.VM.add_to_xenstore_data(vm, "vm-data/x", "1")
    assert root.xenapi.VM.get_xenstore_data(vm) == {"vm-data/x": "1"}
    root.xenapi.VM.add_tags(vm, "t1")
    root.xenapi.VM.add_tags(vm, "t1")
    assert root.xenapi.VM.get_tags(vm) == ["t1"]
    root.xenapi.VM.remove_tags(vm, "t1")
    root.xenapi.VM.set_other_config(vm, {"preset": "1"})
    assert root.xenapi.VM.get_other_config(vm) == {"preset": "1"}


def test_read_only_fields_have_no_setter(root, vm):
    for name in ("VM.set_power_state", "VM.set_uuid", "VM.set_domid",
                 "VM.add_to_snapshots"):
        assert details(getattr(root.xenapi, name.split(".")[0]).__getattr__(
            name.split(".")[1]), vm, "x") == ["MESSAGE_METHOD_UNKNOWN", name]


def test_handle_and_uuid_errors(root, vm):
    assert details(root.xenapi.VM.get_record, "OpaqueRef:bogus") == [
        "HANDLE_INVALID", "VM", "OpaqueRef:bogus"]
    host = root.xenapi.host.get_all()[0]
    assert details(root.xenapi.VM.get_name_label, host) == ["HANDLE_INVALID", "VM", host]
    assert details(root.xenapi.host.get_by_uuid, VM_UUID) == ["UUID_INVALID", "host",
                                                              VM_UUID]
    assert details(root.xenapi.VM.add_to_other_config, "OpaqueRef:x", "a", "b") == [
        "HANDLE_INVALID", "VM", "OpaqueRef:x"]


def test_unknown_method_and_arity(sim, root, vm):
    assert details(root.xenapi.VM.frobnicate, vm) == ["MESSAGE_METHOD_UNKNOWN",
                                                      "VM.frobnicate"]
    assert details(root.xenapi.VM.get_record) == [
        "MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.get_record", "1", "0"]
    assert details(root.xenapi.VM.add_to_other_config, vm, "k") == [
        "MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.add_to_other_config", "3", "2"]
    assert raw_call(sim, "VM.get_all", [])["ErrorDescription"] == [
        "MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.get_all", "0", "-1"]


def test_wrong_types_are_internal_errors(root, vm):
    assert details(root.xenapi.VM.get_record, 5) == [
        "INTERNAL_ERROR", "Failure(\"Expected string, got 'I(5)'\")"]
    assert details(root.xenapi.VM.start, vm, "no", False) == [
        "INTERNAL_ERROR", "Failure(\"Expected bool, got 'S(no)'\")"]
    assert details(root.xenapi.VM.set_VCPUs_number_live, vm, "many") == [
        "INTERNAL_ERROR", "Failure(\"Int64.of_string\")"]


def test_names_are_matched_literally_as_xapi_does(sim, root):
    """A wrong-case call that passed on the lab would fail on a host."""
    answer = raw_call(sim, "vm.get_all", [root._session])
    assert answer["Status"] == "Failure"
    assert answer["ErrorDescription"] == ["MESSAGE_METHOD_UNKNOWN", "vm.get_all"]
    assert raw_call(sim, "VM.get_all", [root._session])["Value"] == root.xenapi.VM.get_all()


def test_event_from_spelled_for_python(sim, root):
    """Python clients can't write event.from (a keyword): xapi also answers event_from."""
    first = root.xenapi.event_from(["vm"], "", 0.0)
    assert "token" in first and "events" in first
    assert getattr(root.xenapi.event, "from")(["vm"], first["token"], 0.0)["events"] == []


def test_list_methods(sim):
    names = raw_call(sim, "system.listMethods", [])
    assert "host.call_plugin" in names and "VM.add_to_other_config" in names


# ---------------------------------------------------------------- RBAC

DENIED_VM_OP = ("No permission in user session. (Roles with this permission: pool-admin, "
                "pool-operator, vm-power-admin, vm-admin, vm-operator)")


def test_read_only_user_reads_everything(ro, root, vm):
    assert ro.xenapi.VM.get_record(vm)["uuid"] == VM_UUID
    assert ro.xenapi.pool.get_all_records()
    assert ro.xenapi.host.get_all_records()
    assert isinstance(ro.xenapi.message.get_all_records(), dict)
    ev = testing.event_from(ro, ["vm"], "", 0.1)
    assert any(e["ref"] == vm for e in ev["events"])


@pytest.mark.parametrize("call,args,perm,roles", [
    ("VM.set_name_label", ("@VM", "x"), "vm.set_name_label",
     "pool-admin, pool-operator, vm-power-admin, vm-admin"),
    ("VM.add_to_other_config", ("@VM", "k", "v"), "vm.add_to_other_config", None),
    ("VM.add_to_other_config", ("@VM", "folder", "/a"), "vm.add_to_other_config/key:folder",
     None),
    ("VM.add_to_other_config", ("@VM", "XenCenter.CustomFields.x", "1"),
     "vm.add_to_other_config/key:xencenter.customfields.*", None),
    ("VM.remove_from_other_config", ("@VM", "k"), "vm.remove_from_other_config", None),
    ("VM.start", ("@VM", False, False), "vm.start", None),
    ("VM.clone", ("@VM", "c"), "vm.clone", "pool-admin, pool-operator, vm-power-admin, "
                                          "vm-admin"),
    ("message.create", ("n", "1", "VM", VM_UUID, "b"), "message.create",
     "pool-admin, pool-operator"),
    ("secret.create", ({"value": "s"},), "secret.create", "pool-admin, pool-operator"),
    ("secret.get_all", (), "secret.get_all", "pool-admin, pool-operator"),
    ("host.call_plugin", ("@HOST", "p", "f", {}), "host.call_plugin", "pool-admin"),
    ("pool.set_name_label", ("@POOL", "x"), "pool.set_name_label",
     "pool-admin, pool-operator"),
])
def test_read_only_user_cannot_write(ro, root, vm, call, args, perm, roles):
    subst = {"@VM": vm, "@HOST": root.xenapi.host.get_all()[0],
             "@POOL": root.xenapi.pool.get_all()[0]}
    args = tuple(subst.get(a, a) if isinstance(a, str) else a for a in args)
    cls, name = call.split(".")
    msg = DENIED_VM_OP if roles is None else (
        "No permission in user session. (Roles with this permission: %s)" % roles)
    assert details(getattr(getattr(ro.xenapi, cls), name), *args) == [
        "RBAC_PERMISSION_DENIED", perm, msg]


def test_vm_operator_role(sim, root, vm):
    op = testing.login(sim, "operator", "oppw")
    op.xenapi.VM.add_to_other_config(vm, "by-operator", "1")
    assert details(op.xenapi.VM.set_name_label, vm, "x")[:2] == [
        "RBAC_PERMISSION_DENIED", "vm.set_name_label"]
    root.xenapi.VM.remove_from_other_config(vm, "by-operator")


# ---------------------------------------------------------------- messages and secrets

def test_messages(root, ro, vm):
    before = root.xenapi.message.get_all()
    ref = root.xenapi.message.create("LAB_ALERT", "3", "VM", VM_UUID, "body text")
    rec = root.xenapi.message.get_record(ref)
    assert rec["name"] == "LAB_ALERT" and rec["priority"] == "3" and rec["cls"] == "VM"
    assert rec["obj_uuid"] == VM_UUID and rec["body"] == "body text"
    assert isinstance(rec["timestamp"], xmlrpc.client.DateTime)
    assert root.xenapi.message.get_by_uuid(rec["uuid"]) == ref
    assert set(root.xenapi.message.get_all()) == set(before) | {ref}
    assert ref in ro.xenapi.message.get_all_records()
    assert ref in root.xenapi.message.get_since(xmlrpc.client.DateTime("20000101T00:00:00Z"))
    assert ref not in root.xenapi.message.get_since(
        xmlrpc.client.DateTime("29990101T00:00:00Z"))
    assert ref in root.xenapi.message.get("VM", VM_UUID,
                                          xmlrpc.client.DateTime("20000101T00:00:00Z"))
    root.xenapi.message.destroy(ref)
    assert details(root.xenapi.message.get_record, ref) == ["HANDLE_INVALID", "message", ref]
    assert details(root.xenapi.message.create, "X", "1", "VM", "no-such-uuid", "") == [
        "UUID_INVALID", "VM", "no-such-uuid"]


def test_secrets(root, ro):
    ref = root.xenapi.secret.create({"value": "s3cr3t", "other_config": {"purpose": "t"}})
    uuid = root.xenapi.secret.get_uuid(ref)
    assert root.xenapi.secret.get_by_uuid(uuid) == ref
    assert root.xenapi.secret.get_value(ref) == "s3cr3t"
    assert root.xenapi.secret.get_record(ref)["other_config"] == {"purpose": "t"}
    root.xenapi.secret.set_value(ref, "changed")
    assert root.xenapi.secret.get_value(ref) == "changed"
    assert details(ro.xenapi.secret.get_value, ref)[:2] == ["RBAC_PERMISSION_DENIED",
                                                            "secret.get_value"]
    root.xenapi.secret.destroy(ref)
    assert details(root.xenapi.secret.get_value, ref) == ["HANDLE_INVALID", "secret", ref]
    assert details(root.xenapi.secret.create, {}) == [
        "INTERNAL_ERROR", 'Server_helpers.Dispatcher_FieldNotFound("value")']


def test_log_has_calls_but_no_secrets(sim, root):
    ref = root.xenapi.secret.create({"value": "never-logged-value"})
    root.xenapi.secret.destroy(ref)
    log = open(sim.config["log"]).read()
    assert "secret.create" in log and "session.login_with_password" in log
    assert "never-logged-value" not in log and "rootpw" not in log
    assert "MAP_DUPLICATE_KEY" in log or "HANDLE_INVALID" in log


# ---------------------------------------------------------------- HTTP and malformed input

def _http(sim, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data.decode("utf-8", "replace")


@pytest.mark.parametrize("body", [b"not xml at all", b"<methodCall><methodName>x",
                                  b"<?xml version='1.0'?><methodResponse><params/>"
                                  b"</methodResponse>", b""])
def test_malformed_xmlrpc_is_an_http_500_without_traceback(sim, body):
    status, text = _http(sim, "POST", "/", body, {"Content-Type": "text/xml"})
    assert status == 500
    assert text.startswith("<html><body><h1>HTTP 500 internal server error</h1>")
    assert "Traceback" not in text and "File \"" not in text


def test_get_and_unknown_methods(sim):
    assert _http(sim, "GET", "/")[0] == 403
    status, text = _http(sim, "PUT", "/", b"x")
    assert status == 501 and "PUT not supported" in text


def test_bad_http(sim):
    s = socket.create_connection(("127.0.0.1", sim.port), timeout=10)
    s.sendall(b"GARBAGE\r\n\r\n")
    reply = s.recv(4096)
    s.close()
    assert reply.startswith(b"HTTP/1.") and b" 400 " in reply.split(b"\r\n")[0]


def test_request_over_300_kib_is_refused(sim, root):
    big = "x" * (310 * 1024)
    body = xmlrpc.client.dumps((root._session, "OpaqueRef:x", big), "VM.set_name_label")
    status, text = _http(sim, "POST", "/", body.encode(), {"Content-Type": "text/xml"})
    assert status == 500 and "Client_requested_size_over_limit" in text


def test_untyped_string_values_and_any_path(sim, root):
    body = ("<?xml version='1.0'?><methodCall><methodName>pool.get_all</methodName>"
            "<params><param><value>%s</value></param></params></methodCall>" % root._session)
    status, text = _http(sim, "POST", "/any/path", body.encode(),
                         {"Content-Type": "text/xml"})
    assert status == 200
    params, _ = xmlrpc.client.loads(text)
    assert params[0]["Status"] == "Success" and len(params[0]["Value"]) == 1
