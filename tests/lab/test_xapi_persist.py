"""Restart semantics: objects survive a kill -9, sessions do not, event tokens stay
meaningful (xapi persists its generation count), the database wins over the config."""
import json
import os
import re
import time
import xmlrpc.client

import pytest

from lab.xapi import testing

pytestmark = pytest.mark.timeout(90)

VM_UUID = "d0000000-0000-4000-8000-00000000000d"


@pytest.fixture
def workdir():
    path = testing.make_workdir()
    try:
        yield path
    finally:
        testing.cleanup(path)


def config(workdir):
    return testing.basic_config(workdir, vms=[
        {"uuid": VM_UUID, "name_label": "keep-me", "power_state": "Halted"}])


def test_kill9_restart_keeps_objects_and_drops_sessions(workdir):
    cfg = config(workdir)
    sim = testing.SimProcess(workdir, cfg).start()
    try:
        s = testing.login(sim)
        x = s.xenapi
        vm = x.VM.get_by_uuid(VM_UUID)
        pool = x.pool.get_all()[0]
        hosts = {h: x.host.get_record(h)["uuid"] for h in x.host.get_all()}
        x.VM.add_to_other_config(vm, "xscontainer-monitor", "True")
        x.VM.start(vm, False, False)
        domid = int(x.VM.get_domid(vm))
        secret = x.secret.create({"value": "pool-key", "other_config": {"k": "v"}})
        secret_uuid = x.secret.get_uuid(secret)
        msg = x.message.create("STALE", "3", "VM", VM_UUID, "unreachable")
        token = testing.event_from(s, ["vm", "message"], "", 0)["token"]
        old_session = s._session
        time.sleep(0.5)          # the database is written within a fraction of a second
        sim.kill9()

        sim.start()
        res = xmlrpc_call(sim, "VM.get_all", [old_session])
        assert res["ErrorDescription"] == ["SESSION_INVALID", old_session]

        s2 = testing.login(sim)
        y = s2.xenapi
        assert y.VM.get_by_uuid(VM_UUID) == vm           # refs and uuids kept
        assert y.pool.get_all() == [pool]
        assert {h: y.host.get_record(h)["uuid"] for h in y.host.get_all()} == hosts
        rec = y.VM.get_record(vm)
        assert rec["other_config"]["xscontainer-monitor"] == "True"
        assert rec["power_state"] == "Running" and int(rec["domid"]) == domid
        assert y.secret.get_by_uuid(secret_uuid) == secret
        assert y.secret.get_value(secret) == "pool-key"
        assert y.message.get_record(msg)["name"] == "STALE"

        # the old token still parses and means "changes after it": nothing yet
        assert testing.event_from(s2, ["vm", "message"], token, 0.2)["events"] == []
        y.VM.add_to_other_config(vm, "after-restart", "1")
        events = testing.event_from(s2, ["vm"], token, 5)["events"]
        assert [e["ref"] for e in events] == [vm]
        # new domains still get new numbers
        y.VM.clean_reboot(vm)
        assert int(y.VM.get_domid(vm)) > domid
    finally:
        sim.stop()


def test_database_wins_over_config_after_first_start(workdir):
    cfg = config(workdir)
    sim = testing.SimProcess(workdir, cfg).start()
    try:
        x = testing.login(sim).xenapi
        pool = x.pool.get_all()[0]
        x.pool.set_name_label(pool, "renamed by the API")
        sim.stop()
        cfg["pool"]["name_label"] = "config says otherwise"
        cfg["vms"].append({"uuid": "d0000000-0000-4000-8000-0000000000ff",
                           "name_label": "new in config"})
        sim.start()
        y = testing.login(sim).xenapi
        assert y.pool.get_name_label(pool) == "renamed by the API"
        assert y.VM.get_by_name_label("new in config") == []
    finally:
        sim.stop()


def test_sigterm_flushes_and_file_is_json(workdir):
    cfg = config(workdir)
    sim = testing.SimProcess(workdir, cfg).start()
    x = testing.login(sim).xenapi
    vm = x.VM.get_by_uuid(VM_UUID)
    x.VM.set_name_description(vm, "written at exit")
    sim.stop()
    with open(cfg["db"]) as f:
        data = json.load(f)
    assert data["tables"]["VM"][vm]["rec"]["name_description"] == "written at exit"
    assert re.match(r"^\d+$", str(data["generation"]))
    assert not [n for n in os.listdir(workdir) if ".tmp." in n]


def xmlrpc_call(sim, method, params):
    return getattr(xmlrpc.client.ServerProxy(sim.url), method)(*params)
