"""event.from as xapi implements it: tokens, initial adds, mod/del, blocking, messages,
object subscriptions, concurrent waiters, logout."""
import re
import threading
import time

import pytest
import XenAPI

from lab.xapi import testing

pytestmark = pytest.mark.timeout(60)

TOKEN = re.compile(r"^\d{20},\d{20}$")
VM_UUID = "e0000000-0000-4000-8000-000000000001"


@pytest.fixture(scope="module")
def sim():
    workdir = testing.make_workdir()
    cfg = testing.basic_config(workdir, vms=[
        {"uuid": VM_UUID, "name_label": "ev-vm", "power_state": "Halted"}])
    with testing.serving(workdir, cfg) as proc:
        yield proc



@pytest.fixture(scope="module")
def vm(root):
    return root.xenapi.VM.get_by_uuid(VM_UUID)


def ev(session, classes, token, timeout=0.0):
    return testing.event_from(session, classes, token, timeout)


def current_token(session, classes):
    return ev(session, classes, "", 0.0)["token"]


def later(delay, f, *args):
    t = threading.Timer(delay, f, args)
    t.start()
    return t


def test_empty_token_returns_every_object_as_add(root, vm):
    res = ev(root, ["vm", "host", "pool"], "")
    assert TOKEN.match(res["token"])
    by_class = {}
    for e in res["events"]:
        assert e["operation"] == "add" and "snapshot" in e and e["timestamp"] == "0.0"
        by_class.setdefault(e["class"], set()).add(e["ref"])
    assert by_class["vm"] == set(root.xenapi.VM.get_all())
    assert by_class["host"] == set(root.xenapi.host.get_all())
    assert by_class["pool"] == set(root.xenapi.pool.get_all())
    snap = [e for e in res["events"] if e["ref"] == vm][0]["snapshot"]
    assert snap == root.xenapi.VM.get_record(vm)
    counts = res["valid_ref_counts"]
    assert counts["vm"] == len(root.xenapi.VM.get_all()) and counts["host"] == 2
    assert isinstance(counts["vm"], int)


def test_star_and_case(root):
    res = ev(root, ["*"], "")
    assert {"vm", "host", "pool"} <= {e["class"] for e in res["events"]}
    assert {e["class"] for e in ev(root, ["VM"], "")["events"]} == {"vm"}


def test_blocks_until_timeout_when_nothing_changes(root):
    token = current_token(root, ["vm"])
    t0 = time.time()
    res = ev(root, ["vm"], token, 1.0)
    took = time.time() - t0
    assert res["events"] == [] and 0.9 <= took < 3.0
    assert TOKEN.match(res["token"]) and res["token"] >= token


def test_mod_event_wakes_a_waiter(sim, root, vm):
    token = current_token(root, ["vm"])
    other = testing.login(sim)
    t = later(0.3, other.xenapi.VM.add_to_other_config, vm, "evkey", "1")
    t0 = time.time()
    res = ev(root, ["vm"], token, 20.0)
    t.join()
    assert time.time() - t0 < 5
    mods = [e for e in res["events"] if e["ref"] == vm]
    assert mods and mods[-1]["operation"] == "mod"
    assert mods[-1]["snapshot"]["other_config"]["evkey"] == "1"
    assert res["token"] > token
    # the same token again sees the same change; the new one does not
    assert ev(root, ["vm"], token)["events"]
    assert ev(root, ["vm"], res["token"], 0.2)["events"] == []
    root.xenapi.VM.remove_from_other_config(vm, "evkey")


def test_add_then_del(root, vm):
    token = current_token(root, ["vm"])
    clone = root.xenapi.VM.clone(vm, "ev-clone")
    res = ev(root, ["vm"], token, 5.0)
    adds = [e for e in res["events"] if e["ref"] == clone]
    assert [e["operation"] for e in adds] == ["add"]
    assert adds[0]["snapshot"]["name_label"] == "ev-clone"
    token2 = res["token"]
    root.xenapi.VM.destroy(clone)
    res = ev(root, ["vm"], token2, 5.0)
    dels = [e for e in res["events"] if e["ref"] == clone]
    assert len(dels) == 1 and dels[0]["operation"] == "del" and "snapshot" not in dels[0]


def test_created_and_destroyed_between_calls_is_invisible(root, vm):
    token = current_token(root, ["vm"])
    clone = root.xenapi.VM.clone(vm, "ephemeral")
    root.xenapi.VM.destroy(clone)
    res = ev(root, ["vm"], token, 0.2)
    assert all(e["ref"] != clone for e in res["events"])


def test_object_subscription(sim, root, vm):
    host = root.xenapi.host.get_all()[0]
    token = current_token(root, ["vm/" + vm])
    root.xenapi.host.add_to_other_config(host, "x", "1")
    root.xenapi.VM.set_name_description(vm, "watched")
    res = ev(root, ["vm/" + vm], token, 5.0)
    assert {e["ref"] for e in res["events"]} == {vm}
    root.xenapi.host.remove_from_other_config(host, "x")


def test_other_classes_do_not_wake(sim, root, vm):
    token = current_token(root, ["host"])
    other = testing.login(sim)
    t = later(0.2, other.xenapi.VM.set_name_description, vm, "noise")
    res = ev(root, ["host"], token, 1.0)
    t.join()
    assert res["events"] == []


def test_message_events(sim, root):
    res = ev(root, ["message"], "")
    token = res["token"]
    other = testing.login(sim)
    t = later(0.3, other.xenapi.message.create, "EV_MSG", "2", "VM", VM_UUID, "hello")
    res = ev(root, ["message"], token, 10.0)
    t.join()
    msgs = [e for e in res["events"] if e["class"] == "message"]
    assert len(msgs) == 1 and msgs[0]["operation"] == "add"
    assert msgs[0]["snapshot"]["name"] == "EV_MSG" and msgs[0]["snapshot"]["body"] == "hello"
    ref = msgs[0]["ref"]
    root.xenapi.message.destroy(ref)
    res = ev(root, ["message"], res["token"], 5.0)
    assert [(e["operation"], e["ref"]) for e in res["events"]] == [("del", ref)]
    assert "snapshot" not in res["events"][0]


def test_message_generation_in_token(root):
    # the second number counts messages; it is 0 when messages are not subscribed
    assert ev(root, ["vm"], "")["token"].endswith(",%020d" % 0)
    root.xenapi.message.create("GEN", "1", "VM", VM_UUID, "")
    assert int(ev(root, ["message"], "")["token"].split(",")[1]) > 0


def test_many_concurrent_waiters(sim, root, vm):
    token = current_token(root, ["vm"])
    results = []

    def wait():
        s = testing.login(sim)
        results.append(ev(s, ["vm"], token, 20.0))
    threads = [threading.Thread(target=wait) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    root.xenapi.VM.set_name_description(vm, "wake all")
    for t in threads:
        t.join(10)
    assert len(results) == 8
    assert all(any(e["ref"] == vm for e in r["events"]) for r in results)


def test_logout_ends_a_blocked_call(sim, root):
    s = testing.login(sim)
    token = current_token(s, ["vm"])
    ref = s._session
    raw = XenAPI.Session(sim.url)     # a second connection on the same session
    raw._session = ref
    done = []

    def blocked():
        try:
            done.append(ev(raw, ["vm"], token, 30.0))
        except Exception as e:   # the client turns SESSION_INVALID into Fault 401
            done.append(e)
    t = threading.Thread(target=blocked)
    t.start()
    time.sleep(0.5)
    t0 = time.time()
    s.xenapi.session.logout()
    t.join(10)
    assert time.time() - t0 < 5 and len(done) == 1
    assert "401" in str(done[0]) or "SESSION_INVALID" in str(done[0])


def test_bad_token(root):
    for token in ("garbage", "1,2,3", "x,1"):
        with pytest.raises(XenAPI.Failure) as e:
            ev(root, ["vm"], token)
        assert e.value.details == ["EVENT_FROM_TOKEN_PARSE_FAILURE", token]


def test_read_only_sees_events_but_not_secrets(sim, root):
    ro = testing.login(sim, "ro", "ropw")
    sref = root.xenapi.secret.create({"value": "hidden"})
    assert any(e["ref"] == sref for e in ev(root, ["secret"], "")["events"])
    assert ev(ro, ["*"], "")["events"] and not any(
        e["class"] == "secret" for e in ev(ro, ["*"], "")["events"])
    root.xenapi.secret.destroy(sref)


def test_inject(root, vm):
    token = current_token(root, ["vm"])
    injected = root.xenapi.event.inject("vm", vm)
    assert TOKEN.match(injected)
    res = ev(root, ["vm"], token, 5.0)
    assert any(e["ref"] == vm and e["operation"] == "mod" for e in res["events"])
