"""Enrolment that can't be spoofed: no credential leaves dom0 before the VM's host key is
verified (a pin, the fingerprint the admin checked, or trust on first use asked for), and
the password can travel in a one-use XAPI secret instead of the call's arguments."""
import os
import subprocess
import sys

import pytest

from dom0_plugin import constants as C
from dom0_plugin.monitor import status as st
from tests.plugin.helpers import wait_for

CLI = [os.path.join(os.path.dirname(sys.executable), "xscontainer")]


def sshd_log(lab, name):
    with open(os.path.join(lab.state, "logs", "sshd-%s.log" % name), errors="replace") as f:
        return f.read()


@pytest.fixture
def unpinned(lab, plugin, enrolled):
    """vm1 with its pinned host key removed (as if registered without prepare); the same
    key pinned again afterwards."""
    ref = plugin.vm_ref("vm1")
    pinned = plugin.other_config("vm1")[C.KEY_HOSTKEY]
    plugin.x.VM.remove_from_other_config(ref, C.KEY_HOSTKEY)
    yield lab.vm("vm1")
    plugin.x.VM.remove_from_other_config(ref, C.KEY_HOSTKEY)
    plugin.x.VM.add_to_other_config(ref, C.KEY_HOSTKEY, pinned)


def status_of(plugin, name):
    return st.decode(plugin.other_config(name).get(C.KEY_STATUS))


def test_no_credential_before_the_host_key_is_verified(lab, plugin, unpinned):
    vm = unpinned
    user, seen = vm["ssh"]["user"], vm["ssh"]["fingerprint"]
    before = len(sshd_log(lab, "vm1"))
    d = plugin.fail("prepare", vmuuid=vm["uuid"], username=user, password=vm["ssh"]["password"])
    assert d == [C.ERR_HOSTKEY_UNVERIFIED, vm["uuid"], seen], d
    d = plugin.fail("register", vmuuid=vm["uuid"], mode="ssh")
    assert d == [C.ERR_HOSTKEY_UNVERIFIED, vm["uuid"], seen], d
    wrong = "SHA256:" + "A" * 43
    d = plugin.fail("prepare", vmuuid=vm["uuid"], username=user, password="x", fingerprint=wrong)
    assert d == [C.ERR_HOSTKEY_MISMATCH, vm["uuid"], wrong, seen], d
    # sshd saw no login attempt of any kind: no password, no key
    tail = sshd_log(lab, "vm1")[before:]
    assert "password" not in tail.lower() and "publickey" not in tail.lower(), tail
    assert C.KEY_HOSTKEY not in plugin.other_config("vm1")      # nothing pinned
    # the monitor does not pin either: the VM is not followed, and the status says why
    s = wait_for(lambda: (lambda s: s if s and s.state != st.FRESH else None)(
        status_of(plugin, "vm1")), 30)
    assert "prepare" in s.reason, s


def test_trust_on_first_use_only_when_asked_and_said(lab, plugin, unpinned):
    vm = unpinned
    before = set(m["uuid"] for m in plugin.messages("vm1"))
    res = plugin.call("prepare", vmuuid=vm["uuid"], username=vm["ssh"]["user"],
                      trust="first-use")
    assert vm["ssh"]["fingerprint"] in res
    new = [m for m in plugin.messages("vm1") if m["uuid"] not in before]
    assert [m["name"] for m in new] == [C.MESSAGE_HOSTKEY_PINNED], new
    assert vm["ssh"]["fingerprint"] in new[0]["body"]
    wait_for(lambda: (lambda s: s and s.state == st.FRESH)(status_of(plugin, "vm1")), 30)
    for m in new:
        plugin.x.message.destroy(plugin.x.message.get_by_uuid(m["uuid"]))


def test_password_in_a_secret_is_read_once(lab, plugin, enrolled):
    vm = lab.vm("vm0")
    secret = plugin.x.secret.create({"value": vm["ssh"]["password"]})
    uuid = plugin.x.secret.get_uuid(secret)
    args = dict(vmuuid=vm["uuid"], username=vm["ssh"]["user"],
                fingerprint=vm["ssh"]["fingerprint"])
    assert plugin.call("prepare", password_secret=uuid, **args).startswith("True{")
    with pytest.raises(Exception):
        plugin.x.secret.get_by_uuid(uuid)                   # destroyed once read
    d = plugin.fail("prepare", password_secret=uuid, **args)
    assert d[:2] == [C.ERR_INVALID_ARGUMENT, C.ARG_PASSWORD_SECRET] and "once" in d[2], d
    pool = plugin.x.pool.get_all()[0]
    key_secret = plugin.x.pool.get_other_config(pool)[C.KEY_POOL_SSH_SECRET]
    d = plugin.fail("prepare", password_secret=key_secret, **args)
    assert d[:2] == [C.ERR_INVALID_ARGUMENT, C.ARG_PASSWORD_SECRET], d
    plugin.x.secret.get_by_uuid(key_secret)                 # untouched
    d = plugin.fail("prepare", password="x", password_secret=key_secret, **args)
    assert d[:2] == [C.ERR_INVALID_ARGUMENT, C.ARG_PASSWORD_SECRET], d


def cli(lab, *args, answer=""):
    x, vm = lab.info["xapi"], lab.vm("vm1")
    env = dict(os.environ, XSCONTAINER_SERVER=x["url"], XSCONTAINER_USER=x["username"],
               XSCONTAINER_PASSWORD=x["password"], XSCONTAINER_VM_PASSWORD=vm["ssh"]["password"])
    res = subprocess.run(CLI + list(args), env=env, input=answer.encode(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    return res.returncode, res.stdout.decode(), res.stderr.decode()


def test_cli_shows_the_key_and_asks(lab, plugin, unpinned):
    vm = unpinned
    rc, out, err = cli(lab, "prepare", "vm1", vm["ssh"]["user"], answer="n\n")
    assert rc != 0 and vm["ssh"]["fingerprint"] in err and "not accepted" in err, (out, err)
    assert C.KEY_HOSTKEY not in plugin.other_config("vm1")
    rc, out, err = cli(lab, "prepare", "vm1", vm["ssh"]["user"], answer="y\n")
    assert rc == 0 and vm["ssh"]["fingerprint"] in out, (out, err)
    assert C.KEY_HOSTKEY in plugin.other_config("vm1")
    # no password secret is left behind
    assert not [r for r in plugin.x.secret.get_all_records().values()
                if r["value"] == vm["ssh"]["password"]]
