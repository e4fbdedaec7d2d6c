"""Every plugin function, run through the lab's host.call_plugin against real Docker Engines
over real SSH, from the VM's own host and from the other host (forwarding)."""
import json
import os

import pytest

from tests.plugin.helpers import docker, monitors_stopped, parse_xml, state_of, wait_for


@pytest.fixture
def container(lab, enrolled):
    """A running container in vm0 (removed afterwards)."""
    vm = lab.vm("vm0")
    name = "web%d" % os.getpid()
    cid = docker(vm, "run", "-d", "--name", name, "--label", "com.example/tier=front",
                 "--stop-timeout", "1", lab.info["image"], "sh", "-c",
                 "trap 'exit 0' TERM; echo hello; echo oops >&2; while :; do sleep 1; done")
    yield vm, name, cid
    docker(vm, "rm", "-f", name, check=False)


def test_public_key_is_one_pool_key_kept_in_a_secret(plugin):
    a = plugin.call("get_public_key", host="host0")
    b = plugin.call("get_public_key", host="host1")
    assert a == b
    assert a.startswith("Truessh-ed25519 ") and a.endswith(" xscontainer-ng")
    pool = plugin.x.pool.get_all()[0]
    secret_uuid = plugin.x.pool.get_other_config(pool)["xscontainer-ssh-key-secret"]
    value = plugin.x.secret.get_value(plugin.x.secret.get_by_uuid(secret_uuid))
    assert "OPENSSH PRIVATE KEY" in value


def test_prepare_pins_the_host_key_and_authorizes_the_pool_key_once(lab, enrolled):
    vm = lab.vm("vm0")
    oc = enrolled.other_config("vm0")
    assert oc["xscontainer-username"] == vm["ssh"]["user"]
    key_type, key_b64 = oc["xscontainer-hostkey"].split()
    with open(os.path.join(os.path.dirname(vm["xenbus_socket"]), "ssh",
                           "ssh_host_%s_key.pub" % key_type.split("-")[-1]
                           .replace("nistp256", "ecdsa"))) as f:
        assert f.read().split()[1] == key_b64
    # a second prepare with the key only (no password) keeps one authorized line
    res = json.loads(enrolled.call("prepare", vmuuid=vm["uuid"],
                                   username=vm["ssh"]["user"])[4:])
    assert res["repinned"] is False
    home = os.path.join(os.path.dirname(vm["xenbus_socket"]), "home")
    with open(os.path.join(home, ".ssh", "authorized_keys")) as f:
        lines = f.read().splitlines()
    pub = enrolled.call("get_public_key")[4:]
    assert lines.count(pub) == 1


def test_prepare_keeps_an_existing_authorized_keys_file_intact(lab, enrolled):
    vm = lab.vm("vm1")
    home = os.path.join(os.path.dirname(vm["xenbus_socket"]), "home")
    path = os.path.join(home, ".ssh", "authorized_keys")
    pub = enrolled.call("get_public_key")[4:]
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherKeyOtherKeyOtherKeyOtherKeyOther0 me@laptop"
    with open(path, "w") as f:
        f.write(other)  # no final newline
    enrolled.call("prepare", vmuuid=vm["uuid"], username=vm["ssh"]["user"],
                  password=vm["ssh"]["password"], fingerprint=vm["ssh"]["fingerprint"])
    with open(path) as f:
        assert f.read() == other + "\n" + pub + "\n"


def test_register_writes_the_documents(lab, enrolled):
    oc = enrolled.other_config("vm0")
    assert oc["xscontainer-monitor"] == "True"
    ps = parse_xml(oc["docker_ps"])
    assert ps.documentElement.tagName == "docker_ps"
    info = parse_xml(oc["docker_info"])
    assert info.getElementsByTagName("Driver")
    version = parse_xml(oc["docker_version"])
    assert version.getElementsByTagName("ApiVersion")[0].firstChild.data == "1.41"


@pytest.mark.parametrize("host", ["resident", "other"])
@pytest.mark.parametrize("how", ["prefix", "full", "name"])
def test_lifecycle_by_prefix_full_id_and_name(plugin, container, host, how):
    vm, name, cid = container
    ref = {"prefix": cid[:10], "full": cid, "name": name}[how]
    on = plugin.resident_host_name("vm0") if host == "resident" else plugin.other_host_name(
        "vm0")
    for fn, expected in (("pause", "paused"), ("unpause", "running"), ("stop", "exited"),
                         ("start", "running"), ("restart", "running")):
        assert plugin.call(fn, host=on, vmuuid=vm["uuid"], container=ref) == "True"
        assert state_of(vm, name) == expected, fn
    # starting a running container is not an error (Docker answers 304)
    assert plugin.call("start", host=on, vmuuid=vm["uuid"], container=ref) == "True"


def test_get_inspect_and_get_top(plugin, container):
    vm, name, cid = container
    doc = plugin.call("get_inspect", vmuuid=vm["uuid"], object=cid)
    assert doc.startswith("True<?xml")
    dom = parse_xml(doc[4:])
    assert dom.documentElement.tagName == "docker_inspect"
    assert dom.getElementsByTagName("Id")[0].firstChild.data == cid
    top = parse_xml(plugin.call("get_top", host=plugin.other_host_name("vm0"),
                                vmuuid=vm["uuid"], object=name)[4:])
    procs = top.getElementsByTagName("Process")
    assert procs
    for p in procs:
        for field in ("PID", "CMD", "TIME"):
            el = p.getElementsByTagName(field)
            assert el and el[0].firstChild and el[0].firstChild.data.strip(), field


def test_json_functions(plugin, container):
    vm, name, cid = container
    ps = json.loads(plugin.call("get_ps", vmuuid=vm["uuid"])[4:])
    mine = [c for c in ps if c["id"] == cid][0]
    assert mine["name"] == name and mine["status"] == "Up" and mine["state"] == "running"
    assert mine["labels"] == {"com.example/tier": "front"}
    info = json.loads(plugin.call("get_info", vmuuid=vm["uuid"])[4:])
    assert info["ServerVersion"].startswith("20.10")
    version = json.loads(plugin.call("get_version", vmuuid=vm["uuid"])[4:])
    assert version["ApiVersion"] == "1.41"
    logs = json.loads(wait_for(lambda: (lambda r: r if "hello" in r else None)(
        plugin.call("get_logs", vmuuid=vm["uuid"], container=name, tail="10")))[4:])
    text = json.dumps(logs)
    assert "hello" in text and "oops" in text
    stats = json.loads(plugin.call("get_stats", vmuuid=vm["uuid"], container=name)[4:])
    assert list(stats) == [cid]
    s = stats[cid]
    assert s["memory_usage"] > 0


def test_deregister_removes_the_documents(lab, plugin, enrolled):
    vm = lab.vm("vm1")
    assert plugin.call("deregister", vmuuid=vm["uuid"]) == "True"
    oc = plugin.other_config("vm1")
    assert oc["xscontainer-monitor"] == "False"
    assert not {"docker_ps", "docker_info", "docker_version"} & set(oc)
    assert plugin.fail("get_ps", vmuuid=vm["uuid"])[0] == "XSCONTAINER_VM_NOT_REGISTERED"
    assert plugin.call("register", vmuuid=vm["uuid"], host="host1") == "True"
    assert "docker_ps" in plugin.other_config("vm1")


def test_non_ascii_text_reaches_the_tools_as_itself(lab, plugin, enrolled):
    """Documents hold the characters themselves (XO decodes no numeric reference); only
    the plugin's ASCII stdout escapes them, in its XML-RPC envelope, which the XenAPI
    client decodes: on the monitor's fast path and on the plugin's own."""
    vm = lab.vm("vm0")
    name = "utf%d" % os.getpid()
    text = "caf\u00e9-\u65e5\u672c \u2603"
    cid = docker(vm, "run", "-d", "--name", name, "--label", "note=" + text,
                 lab.info["image"], "sh", "-c", "sleep 300 # " + text)
    try:
        doc = wait_for(lambda: (lambda d: d if text in d else None)(
            plugin.other_config("vm0").get("docker_ps", "")), 20)
        assert "&#" not in doc
        assert parse_xml(doc).documentElement.tagName == "docker_ps"

        def check():
            out = plugin.call("get_inspect", vmuuid=vm["uuid"], object=cid)
            assert out.startswith("True<?xml") and "&#" not in out
            assert out.count(text) >= 2, out        # the label and the command
            ps = json.loads(plugin.call("get_ps", vmuuid=vm["uuid"])[4:])
            assert [c["labels"]["note"] for c in ps if c["id"] == cid] == [text]
        check()                         # the monitor answers
        with monitors_stopped(lab):
            check()                     # the plugin itself answers, under dom0's 3.6
    finally:
        docker(vm, "rm", "-f", name, check=False)
