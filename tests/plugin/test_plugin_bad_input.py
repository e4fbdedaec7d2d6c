"""Bad input and faults: each gives its own clear XAPI error, quickly, and loses nothing."""
import os
import subprocess
import time
import uuid

import pytest

from dom0_plugin import constants as C
from dom0_plugin import ssh_transport
from tests.plugin.helpers import docker, parse_xml


def code(details):
    return details[0]


def test_unknown_and_malformed_vm_uuid(plugin, enrolled):
    missing = str(uuid.uuid4())
    assert plugin.fail("get_ps", vmuuid=missing) == ["XSCONTAINER_NO_SUCH_VM", missing]
    d = plugin.fail("get_ps", vmuuid="not-a-uuid")
    assert d[:2] == ["XSCONTAINER_INVALID_ARGUMENT", "vmuuid"]


def test_missing_arguments(plugin, lab, enrolled):
    assert plugin.fail("get_ps")[:2] == ["XSCONTAINER_INVALID_ARGUMENT", "vmuuid"]
    d = plugin.fail("stop", vmuuid=lab.vm("vm0")["uuid"])
    assert d[:2] == ["XSCONTAINER_INVALID_ARGUMENT", "container"]
    d = plugin.fail("get_top", vmuuid=lab.vm("vm0")["uuid"])
    assert d[:2] == ["XSCONTAINER_INVALID_ARGUMENT", "object"]


def test_unknown_function(plugin):
    assert plugin.fail("passthrough", cmd="id") == ["UNKNOWN_XENAPI_PLUGIN_FUNCTION",
                                                     "passthrough"]


BAD_REFS = ["a/b", "..", "../x", "a?b", "%2F", "a;id", "a b", "a\nb", "x" * 10000, "caf\u00e9",
            "-rf", ""]


@pytest.mark.parametrize("ref", BAD_REFS, ids=range(len(BAD_REFS)))
def test_hostile_container_references_are_refused(plugin, lab, enrolled, ref):
    vm = lab.vm("vm0")
    d = plugin.fail("stop", vmuuid=vm["uuid"], container=ref)
    assert d[:2] == ["XSCONTAINER_INVALID_ARGUMENT", "container"], d
    d = plugin.fail("get_inspect", vmuuid=vm["uuid"], object=ref)
    assert d[:2] == ["XSCONTAINER_INVALID_ARGUMENT", "object"], d


def test_nul_in_a_reference_never_reaches_docker(plugin, lab, enrolled):
    """NUL and other control characters cannot travel in XML-RPC: xapi refuses the
    request itself (HTTP 500) before any plugin runs, as a real xapi does."""
    import xmlrpc.client
    vm = lab.vm("vm0")
    since = docker(vm, "info", "--format", "{{.SystemTime}}")
    for bad in ("no\x00such", "no\x01such"):
        with pytest.raises(xmlrpc.client.ProtocolError) as caught:
            plugin.call("stop", vmuuid=vm["uuid"], container=bad)
        assert caught.value.errcode == 500
    # the engine saw no request about a container: no event at all since
    until = docker(vm, "info", "--format", "{{.SystemTime}}")
    assert docker(vm, "events", "--since", since, "--until", until,
                  "--filter", "type=container") == ""


def test_no_such_container(plugin, lab, enrolled):
    vm = lab.vm("vm0")
    d = plugin.fail("start", vmuuid=vm["uuid"], container="nosuchcontainer")
    assert d == ["XSCONTAINER_NO_SUCH_CONTAINER", vm["uuid"], "nosuchcontainer"]


def test_unregistered_and_halted_vms(plugin, lab, enrolled):
    vm = lab.vm("vm0")
    ref = plugin.vm_ref("vm0")
    snap = plugin.x.VM.snapshot(ref, "vm0-snap")
    clone = plugin.x.VM.clone(snap, "vm0-clone")  # a new, halted VM made from the snapshot
    plugin.x.VM.set_is_a_template(clone, False)
    try:
        assert not plugin.x.VM.get_is_a_snapshot(clone)
        assert plugin.fail("get_ps", vmuuid=plugin.x.VM.get_uuid(snap))[:2] == [
            "XSCONTAINER_INVALID_ARGUMENT", "vmuuid"]
        uuid_ = plugin.x.VM.get_uuid(clone)
        # the clone carries the registration it copied, but is halted
        start = time.monotonic()
        assert plugin.fail("get_ps", vmuuid=uuid_) == ["XSCONTAINER_VM_NOT_RUNNING", uuid_,
                                                        "Halted"]
        assert time.monotonic() - start < 5
        plugin.x.VM.remove_from_other_config(clone, "xscontainer-monitor")
        assert plugin.fail("stop", vmuuid=uuid_, container="x") == [
            "XSCONTAINER_VM_NOT_REGISTERED", uuid_]
    finally:
        plugin.x.VM.destroy(clone)
        plugin.x.VM.destroy(snap)
    assert vm["uuid"] in [plugin.x.VM.get_uuid(r) for r in plugin.x.VM.get_all()]


def test_templates_and_control_domains_are_refused(plugin, lab):
    dom0 = [r for r, rec in plugin.x.VM.get_all_records().items() if rec["is_control_domain"]][0]
    d = plugin.fail("register", vmuuid=plugin.x.VM.get_uuid(dom0))
    assert d[:2] == ["XSCONTAINER_INVALID_ARGUMENT", "vmuuid"]


HOSTILE = "<b>&amp; ]]> \x01\x1b[31m caf\u00e9 \u2603 a && b"


def test_hostile_names_labels_and_commands_stay_valid_xml(plugin, lab, enrolled):
    vm = lab.vm("vm0")
    name = "odd.name_%d-x" % os.getpid()
    docker(vm, "create", "--name", name, "--label", "weird<key>=" + HOSTILE,
           "--label", "1digit=x", "--label", "entry=trap", lab.info["image"], "echo", HOSTILE)
    try:
        plugin.call("register", vmuuid=vm["uuid"])
        doc = plugin.other_config("vm0")["docker_ps"]
        assert "&#" not in doc      # characters as themselves (XO decodes no reference)
        dom = parse_xml(doc)
        entries = [e for e in dom.getElementsByTagName("entry")
                   if e.getElementsByTagName("names")[0].firstChild.data == name]
        assert len(entries) == 1
        # text and CDATA sections (a text holding < or > is written as CDATA)
        command = "".join(n.data for n in
                          entries[0].getElementsByTagName("command")[0].childNodes)
        # text round-trips except the control characters XML cannot carry
        assert HOSTILE.replace("\x01", "\ufffd").replace("\x1b", "\ufffd") in command
        inspect = parse_xml(plugin.call("get_inspect", vmuuid=vm["uuid"], object=name)[4:])
        specials = inspect.getElementsByTagName("SPECIAL_XS_ENCODED_ELEMENT")
        assert "weird<key>" in [s.getAttribute("name") for s in specials]
    finally:
        docker(vm, "rm", "-f", name)


# ---------------------------------------------------------------- faults of the VM

def lab_vm_spec(lab, name):
    import json
    with open(os.path.join(lab.state, "runtime.json")) as f:
        rt = json.load(f)
    return [v for v in rt["vms"].values() if v["name"] == name][0]


def reboot(plugin, name):
    """Put a VM back as it was (the lab restarts its engine and sshd)."""
    plugin.x.VM.clean_reboot(plugin.vm_ref(name))


def test_ssh_refused_is_unreachable_quickly(plugin, lab, enrolled):
    from lab import vm as labvm
    spec = lab_vm_spec(lab, "vm1")
    labvm.stop_sshd(spec)  # the listener and every session (warm connections die too)
    try:
        start = time.monotonic()
        d = plugin.fail("get_ps", vmuuid=spec["uuid"])
        assert d[0] == "XSCONTAINER_VM_UNREACHABLE" and "refused" in d[2], d
        assert time.monotonic() - start < 5
    finally:
        reboot(plugin, "vm1")


def test_wrong_password_in_prepare(plugin, lab, enrolled):
    vm = lab.vm("vm1")
    before = plugin.other_config("vm1")
    d = plugin.fail("prepare", vmuuid=vm["uuid"], username="nosuchuser", password="wrong")
    assert d[0] == "XSCONTAINER_AUTH_FAILED" and "nosuchuser" in d[2], d
    after = plugin.other_config("vm1")
    assert after["xscontainer-username"] == before["xscontainer-username"]
    assert after["xscontainer-hostkey"] == before["xscontainer-hostkey"]


def test_changed_host_key_is_refused_until_re_pinned(plugin, lab, enrolled):
    spec = lab_vm_spec(lab, "vm1")
    vm = lab.vm("vm1")
    pinned = plugin.other_config("vm1")["xscontainer-hostkey"]
    keytype = {"ssh-ed25519": "ed25519"}.get(pinned.split()[0], "ecdsa")
    key = os.path.join(spec["ssh_dir"], "ssh_host_%s_key" % keytype)
    original = {}
    for path in (key, key + ".pub"):
        with open(path, "rb") as f:
            original[path] = f.read()
        os.unlink(path)
    subprocess.run(["ssh-keygen", "-q", "-t", keytype, "-N", "", "-f", key], check=True)
    reboot(plugin, "vm1")  # sshd starts with the new key
    try:
        rekeyed(plugin, lab, vm, key, pinned)
    finally:
        # put the VM's own key back (later tests use the fingerprint its "console" shows)
        for path, data in original.items():
            with open(path, "wb") as f:
                f.write(data)
        reboot(plugin, "vm1")
        plugin.call("prepare", vmuuid=vm["uuid"], username=vm["ssh"]["user"],
                    fingerprint=vm["ssh"]["fingerprint"])


def rekeyed(plugin, lab, vm, key, pinned):
    d = plugin.fail("get_ps", vmuuid=vm["uuid"])
    assert d[0] == "XSCONTAINER_HOSTKEY_MISMATCH" and d[1] == vm["uuid"], d
    assert d[2].startswith("SHA256:") and d[3].startswith("SHA256:") and d[2] != d[3]
    assert plugin.other_config("vm1")["xscontainer-hostkey"] == pinned  # never silently
    assert any(m["name"] == "XSCONTAINER_HOSTKEY_MISMATCH" for m in plugin.messages("vm1"))
    # prepare alone does not re-pin either: only with the fingerprint the admin checked
    d = plugin.fail("prepare", vmuuid=vm["uuid"], username=vm["ssh"]["user"])
    new = subprocess.run(["ssh-keygen", "-lf", key + ".pub"], stdout=subprocess.PIPE,
                         check=True, universal_newlines=True).stdout.split()[1]
    old = ssh_transport.fingerprint(ssh_transport.parse_pin(pinned))
    assert d == ["XSCONTAINER_HOSTKEY_MISMATCH", vm["uuid"], old, new], d
    res = plugin.call("prepare", vmuuid=vm["uuid"], username=vm["ssh"]["user"],
                      fingerprint=new)
    assert '"repinned":true' in res
    assert plugin.call("get_ps", vmuuid=vm["uuid"]).startswith("True[")


def test_docker_socket_permission_denied(plugin, lab, enrolled):
    vm = lab.vm("vm1")
    subprocess.run(["gpasswd", "-d", vm["ssh"]["user"], "docker"], check=True,
                   stdout=subprocess.DEVNULL)
    # sessions opened before keep their groups: end them, as a re-login would
    subprocess.run(["pkill", "-u", vm["ssh"]["user"]])
    try:
        d = plugin.fail("get_ps", vmuuid=vm["uuid"])
        assert d[0] == "XSCONTAINER_DOCKER_UNAVAILABLE" and "permission denied" in d[2], d
        before = set(m["uuid"] for m in plugin.messages("vm1"))
        d = plugin.fail("stop", vmuuid=vm["uuid"], container="anything")
        assert d[0] == "XSCONTAINER_DOCKER_UNAVAILABLE"
        # lifecycle failures are posted, as XAPI messages of their own name
        new = [m for m in plugin.messages("vm1") if m["uuid"] not in before]
        assert [m["name"] for m in new] == [C.MESSAGE_OPERATION_FAILED], new
        assert "stop" in new[0]["body"] and "permission denied" in new[0]["body"], new
    finally:
        subprocess.run(["gpasswd", "-a", vm["ssh"]["user"], "docker"], check=True,
                       stdout=subprocess.DEVNULL)


def test_docker_stopped(plugin, lab, enrolled):
    spec = lab_vm_spec(lab, "vm1")
    with open(os.path.join(spec["run"], "dockerd.pid")) as f:
        os.kill(int(f.read()), 15)
    try:
        deadline = time.time() + 30
        while os.path.exists(spec["docker_socket"]) and time.time() < deadline:
            time.sleep(0.1)
        start = time.monotonic()
        d = plugin.fail("get_ps", vmuuid=spec["uuid"])
        assert d[0] == "XSCONTAINER_DOCKER_UNAVAILABLE" and "not running" in d[2], d
        assert time.monotonic() - start < 10
    finally:
        reboot(plugin, "vm1")
