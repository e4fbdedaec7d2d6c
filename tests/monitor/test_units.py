"""Unit tests of the monitor's pure parts (no lab, no network)."""
import json

import pytest

from dom0_plugin import constants as C
from dom0_plugin.errors import InvalidArgument
from dom0_plugin.monitor import backoff, config, containers, model, protocol
from dom0_plugin.monitor import status as st

VM = "11111111-2222-3333-4444-555555555555"
OTHER = "99999999-2222-3333-4444-555555555555"
HOST = "aaaaaaaa-2222-3333-4444-555555555555"


def full_id(n):
    return ("%064x" % n)


# ---------------------------------------------------------------- status key

def test_status_round_trip_is_small_ascii_json():
    s = st.make(st.STALE, 1700000000.7, 1700000100, VM, HOST, "conn\x00ection \u00e9 lost\n")
    text = st.encode(s)
    text.encode("ascii")
    data = json.loads(text)
    assert data["v"] == 1 and data["state"] == "stale" and data["since"] == 1700000000
    assert data["vm"] == VM and data["host"] == HOST
    assert "\x00" not in data["reason"] and "\n" not in data["reason"]
    assert st.decode(text) == s


def test_status_says_how_many_containers_docker_ps_shows():
    s = st.make(st.FRESH, 1, 2, VM, HOST, shown=(791, 2000))
    data = json.loads(st.encode(s))
    assert (data["shown"], data["total"]) == (791, 2000)
    assert st.decode(st.encode(s)) == s
    everything = st.make(st.FRESH, 1, 2, VM, HOST)
    assert "shown" not in json.loads(st.encode(everything))
    assert st.decode(st.encode(everything)).shown is None


@pytest.mark.parametrize("text", [None, "", "True", "{", "[]", '{"state":"odd"}',
                                  '{"state":"fresh","shown":3}',
                                  '{"state":"fresh","since":"x"}', "x" * 5000])
def test_status_decode_rejects_what_is_not_ours(text):
    assert st.decode(text) is None


def test_status_reason_is_capped():
    s = st.make(st.UNREACHABLE, 1, 2, VM, HOST, "r" * 5000)
    assert len(s.reason) <= st.REASON_MAX


# ---------------------------------------------------------------- config and backoff

def test_config_file_and_overrides(tmp_path):
    path = tmp_path / "monitor.conf"
    path.write_text("# comment\ngrace_seconds = 5\nlog-level = DEBUG\nworkers=2\n")
    cfg = config.load(str(path), {"socket": "/tmp/x.sock", "workers": None})
    assert cfg.grace_seconds == 5.0 and cfg.log_level == "DEBUG" and cfg.workers == 2
    assert cfg.socket == "/tmp/x.sock"
    assert config.load(str(tmp_path / "missing")).grace_seconds == 120.0


@pytest.mark.parametrize("text", ["nonsense", "unknown = 1", "workers = many",
                                  "grace_seconds = -1"])
def test_config_rejects_bad_lines(tmp_path, text):
    path = tmp_path / "monitor.conf"
    path.write_text(text)
    with pytest.raises(ValueError):
        config.load(str(path))


def test_backoff_grows_caps_jitters_and_resets():
    b = backoff.Backoff(0.5, 10, rng=lambda: 0.999999)
    delays = [b.next() for _ in range(12)]
    assert delays[0] < 0.5 and delays[1] > 0.5 and max(delays) <= 10
    assert delays[-1] > 9.9
    low = backoff.Backoff(0.5, 10, rng=lambda: 0.0)
    assert [low.next() for _ in range(3)] == [0.25, 0.5, 1.0]
    b.reset()
    assert b.next() < 0.5


# ---------------------------------------------------------------- model

def record(**kw):
    rec = {"uuid": VM, "name_label": "web", "power_state": "Running",
           "resident_on": "OpaqueRef:h0", "domid": "3", "is_control_domain": False,
           "is_a_template": False, "is_a_snapshot": False, "guest_metrics": "OpaqueRef:gm",
           "other_config": {C.KEY_MONITOR: "True"}}
    rec.update(kw)
    return rec


def test_view_keeps_digests_not_documents():
    big = "<?xml version=\"1.0\" ?><docker_ps>" + "x" * 200000 + "</docker_ps>"
    view = model.view_of("OpaqueRef:v", record(other_config={C.KEY_MONITOR: "true",
                                                             C.KEY_DOCKER_PS: big}))
    assert view.registered and view.domid == 3 and not view.special
    assert view.digests[C.KEY_DOCKER_PS] == model.digest(big)
    assert len(view.digests[C.KEY_DOCKER_PS]) == 20


@pytest.mark.parametrize("changes,followed", [
    ({}, True),
    ({"power_state": "Paused"}, True),
    ({"power_state": "Halted", "resident_on": "OpaqueRef:NULL"}, False),
    ({"resident_on": "OpaqueRef:h1"}, False),
    ({"other_config": {C.KEY_MONITOR: "False"}}, False),
    ({"other_config": {}}, False),
    ({"is_a_snapshot": True}, False),
    ({"is_a_template": True}, False),
    ({"is_control_domain": True}, False),
])
def test_who_follows_a_vm(changes, followed):
    view = model.view_of("OpaqueRef:v", record(**changes))
    assert model.followed_by(view, "OpaqueRef:h0") is followed


def test_copies_are_recognised_by_the_status_vm():
    mine = st.encode(st.make(st.FRESH, 1, 1, VM, HOST))
    theirs = st.encode(st.make(st.FRESH, 1, 1, OTHER, HOST))
    oc = {C.KEY_MONITOR: "True", C.KEY_DOCKER_PS: "<x/>"}
    assert not model.is_copy(model.view_of("r", record(other_config=dict(oc))))
    assert not model.is_copy(model.view_of("r", record(other_config=dict(
        oc, **{C.KEY_STATUS: mine}))))
    assert model.is_copy(model.view_of("r", record(other_config=dict(
        oc, **{C.KEY_STATUS: theirs}))))


def test_addresses_filter_untrusted_guest_values():
    nets = {"0/ip": "10.0.0.2", "0/ipv4/0": "10.0.0.2", "0/ipv6/0": "fd00::2",
            "1/ip": "127.0.0.1", "2/ip": "not an ip", "3/ip": "169.254.1.1",
            "4/ip": "x" * 100, "5/ip": "224.0.0.1", "6/ip": "0.0.0.0"}
    assert model.addresses(nets) == ["10.0.0.2", "fd00::2"]
    assert model.addresses(None) == []


def test_addresses_only_of_the_guests_devices_in_order_and_a_handful():
    nets = {"10/ip": "10.0.0.10", "2/ip": "10.0.0.3", "0/ipv6/1": "fd00::2",
            "0/ipv6/0": "fd00::1", "0/ip": "10.0.0.2", "0/ipv4/1": "10.0.0.2",
            "evil": "10.9.9.9", "0/ip/x": "10.9.9.8", "../0/ip": "10.9.9.7"}
    # IPv4 first, each family in device order (10 after 2), no key but a device's own
    assert model.addresses(nets) == ["10.0.0.2", "10.0.0.3", "10.0.0.10", "fd00::1"]
    many = dict(("%d/ip" % n, "10.1.0.%d" % (n + 1)) for n in range(64))
    assert model.addresses(many) == ["10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4"]


# ---------------------------------------------------------------- container table

def summary(n, **kw):
    s = {"Id": full_id(n), "Names": ["/c%d" % n], "Image": "img", "Command": "sleep 1",
         "Created": 1000 + n, "State": "running", "Status": "Up 1 second",
         "Ports": [], "Labels": {}, "NetworkSettings": {"huge": "x" * 10000},
         "Mounts": [{"x": "y"}] * 50}
    s.update(kw)
    return s


def test_table_keeps_only_what_docker_ps_shows_capped():
    table = containers.ContainerTable()
    table.replace([summary(1, Image="i" * 100000, Labels=dict(("k%d" % i, "v" * 5000)
                                                              for i in range(500))),
                   {"Id": "not-an-id"}, "junk"])
    entry = table.items[full_id(1)]
    assert "NetworkSettings" not in entry and "Mounts" not in entry
    assert len(entry["Image"]) == containers.TEXT_MAX
    assert len(entry["Labels"]) == containers.LABELS_MAX
    assert all(len(v) <= containers.TEXT_MAX for v in entry["Labels"].values())
    assert len(table) == 1


def test_table_incremental_update_and_order():
    table = containers.ContainerTable()
    table.replace([summary(1), summary(2), summary(3)])
    table.update([full_id(2), full_id(4)], [summary(4, State="exited"), summary(9)])
    assert [e["Id"] for e in table.ordered()] == [full_id(4), full_id(3), full_id(1)]
    assert table.items[full_id(4)]["State"] == "exited"


def test_table_limit_keeps_the_newest():
    table = containers.ContainerTable(limit=10)
    table.replace([summary(n) for n in range(25)])
    assert len(table) == 10 and table.dropped == 15
    assert min(int(i, 16) for i in table.items) == 15


# ---------------------------------------------------------------- protocol

def test_protocol_args_are_checked():
    assert protocol.check_args("top", {"ref": "web"}) == {"ref": "web"}
    assert protocol.check_args("stop", {"ref": "abcdef0123", "grace": 3}) == {
        "ref": "abcdef0123", "grace": 3}
    assert protocol.check_args("logs", {"ref": "w", "tail": "all", "since": "5"}) == {
        "ref": "w", "tail": "all", "since": 5}
    assert protocol.check_args("ps", {}) == {}
    for verb, args in [("top", {}), ("top", {"ref": "../etc"}), ("top", {"ref": "a b"}),
                       ("exec", {"cmd": "rm"}), ("ps", {"all": "yes"}),
                       ("stop", {"ref": "w", "grace": 100000}),
                       ("stop", {"ref": "w", "grace": True}),
                       ("top", {"ref": "w", "extra": 1}), ("start", [])]:
        with pytest.raises(InvalidArgument):
            protocol.check_args(verb, args)


def test_protocol_has_no_passthrough_verb():
    assert set(protocol.VERBS) == {"version", "info", "ps", "inspect", "resolve", "top",
                                   "stats", "logs", "start", "stop", "restart", "pause",
                                   "unpause"}


def test_protocol_lines():
    line = protocol.encode(protocol.request(VM, "top", {"ref": "w\u00e9"}))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert protocol.decode(line)["args"]["ref"] == "w\u00e9"
    with pytest.raises(ValueError):
        protocol.decode(b"[1]")
