"""The follower's freshness record and messages, and the coordinator's cleanup, without a
lab: a follower whose VM can't be reached, driven on a real event loop."""
import asyncio
import json

from dom0_plugin import constants as C
from dom0_plugin.errors import VmUnreachable
from dom0_plugin.monitor import config, manager, model, xapi_link
from dom0_plugin.monitor import status as st
from dom0_plugin.monitor.follower import Follower

VM = "11111111-2222-3333-4444-555555555555"
PARENT = "99999999-2222-3333-4444-555555555555"
HOST = "aaaaaaaa-2222-3333-4444-555555555555"


class Hub(object):
    def __init__(self):
        self.cfg = config.Config(grace_seconds=0.3, backoff_initial=0.05, backoff_max=0.1)
        self.outbox = xapi_link.Outbox(1, 0.0)
        self.host_uuid = HOST
        self.executor = None
        self.keys_asked = 0

    async def client_key(self):
        self.keys_asked += 1
        raise VmUnreachable(VM, "no route to host")

    def addresses_of(self, view):
        return []

    def key_refused(self):
        pass


PIN = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def view(**other):
    oc = {C.KEY_MONITOR: "True", C.KEY_HOSTKEY: PIN}     # prepared: its host key pinned
    oc.update(other)
    return model.view_of("OpaqueRef:vm", {"uuid": VM, "name_label": "web",
                                          "power_state": "Running",
                                          "resident_on": "OpaqueRef:h", "domid": "3",
                                          "other_config": oc})


def drain(outbox):
    keys, messages = {}, []
    while True:
        item = outbox.take(0, timeout=0.01)
        if item is None:
            return keys, messages
        keys.update(item[1].keys)
        messages += item[1].messages


def test_unreachable_vm_goes_stale_then_unreachable_with_one_message():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    hub = Hub()
    follower = Follower(hub, view(**{C.KEY_STATUS: st.encode(st.make(
        st.FRESH, 1, 1, VM, HOST))}))
    follower.start()
    loop.run_until_complete(asyncio.sleep(0.15))
    keys, messages = drain(hub.outbox)
    stale = st.decode(keys[C.KEY_STATUS])
    assert stale.state == st.STALE and "no route to host" in stale.reason
    assert stale.vm == VM and stale.host == HOST and not messages
    loop.run_until_complete(asyncio.sleep(0.4))
    keys, messages = drain(hub.outbox)
    assert st.decode(keys[C.KEY_STATUS]).state == st.UNREACHABLE
    assert st.decode(keys[C.KEY_STATUS]).since == stale.since
    assert [m[:2] for m in messages] == [("post", C.MESSAGE_CANNOT_MONITOR)]
    loop.run_until_complete(asyncio.sleep(0.4))
    keys, messages = drain(hub.outbox)
    assert not messages                         # one message, not one per retry
    follower._fresh()
    keys, messages = drain(hub.outbox)
    assert st.decode(keys[C.KEY_STATUS]).state == st.FRESH
    assert [m[:2] for m in messages] == [("clear", C.MESSAGE_CANNOT_MONITOR)]
    follower.stop()
    loop.run_until_complete(asyncio.sleep(0.01))
    loop.close()


def test_unpinned_vm_is_not_contacted_and_says_why():
    """Registered without prepare: the monitor pins nothing and sends no credential."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    hub = Hub()
    follower = Follower(hub, model.view_of("OpaqueRef:vm", {
        "uuid": VM, "name_label": "web", "power_state": "Running",
        "resident_on": "OpaqueRef:h", "domid": "3",
        "other_config": {C.KEY_MONITOR: "True"}}))
    follower.start()
    loop.run_until_complete(asyncio.sleep(0.15))
    keys, _ = drain(hub.outbox)
    stale = st.decode(keys[C.KEY_STATUS])
    assert stale.state == st.STALE and "run prepare with fingerprint=" in stale.reason
    assert C.KEY_HOSTKEY not in keys and hub.keys_asked == 0
    follower.stop()
    loop.run_until_complete(asyncio.sleep(0.01))
    loop.close()


def test_copied_documents_are_wiped_at_once():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    hub = Hub()
    copied = view(**{C.KEY_DOCKER_PS: "<?xml version=\"1.0\" ?><docker_ps/>",
                     C.KEY_STATUS: st.encode(st.make(st.FRESH, 1, 1, PARENT, HOST))})
    follower = Follower(hub, copied)
    follower.start()
    keys, _ = drain(hub.outbox)
    assert keys[C.KEY_DOCKER_PS] is None
    follower.stop()
    loop.run_until_complete(asyncio.sleep(0.01))
    loop.close()


def test_coordinator_removes_documents_nobody_follows():
    box = xapi_link.Outbox(1, 0.0)
    mgr = manager.Manager(config.Config(), HOST, None, None, box, xapi_link.WriteStats())
    halted = model.view_of("OpaqueRef:vm", {
        "uuid": VM, "power_state": "Halted", "resident_on": "OpaqueRef:NULL",
        "other_config": {C.KEY_MONITOR: "True", C.KEY_DOCKER_PS: "<x/>",
                         C.KEY_STATUS: st.encode(st.make(st.UNREACHABLE, 1, 1, VM, HOST)),
                         "other": "kept"}})
    update = xapi_link.Update(True, "OpaqueRef:h", [("OpaqueRef:vm", halted)], [],
                              [("OpaqueRef:pool", "OpaqueRef:h")])
    mgr.on_update(update)
    keys, messages = drain(box)
    assert keys == {C.KEY_DOCKER_PS: None, C.KEY_STATUS: None}
    assert [m[:2] for m in messages] == [("clear", C.MESSAGE_CANNOT_MONITOR)]
    # not the coordinator: hands off
    other = manager.Manager(config.Config(), HOST, None, None, box, xapi_link.WriteStats())
    other.on_update(xapi_link.Update(True, "OpaqueRef:h2", [("OpaqueRef:vm", halted)], [],
                                     [("OpaqueRef:pool", "OpaqueRef:h")]))
    assert drain(box) == ({}, [])
    json.dumps(mgr.describe())
