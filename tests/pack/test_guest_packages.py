"""The guest agent packages (.deb and .rpm), their unit and config, and the cloud-init
snippet."""
import configparser
import os
import re
import shutil
import subprocess

import pytest

from pack import names as N, wheels
from tests.pack.conftest import VERSION, rpm_files, rpm_q, run

LIB = "/usr/lib/xscontainer-agent"


@pytest.fixture(scope="session")
def deb(built):
    return built["files"][N.agent_deb_name(VERSION)]


@pytest.fixture(scope="session")
def agent_rpm(built):
    return built["files"][N.agent_rpm_name(VERSION)]


def _control(deb_path):
    fields = {}
    for line in run(["dpkg-deb", "-f", deb_path]).stdout.splitlines():
        if line and not line.startswith(" "):
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def _deb_files(deb_path):
    files = {}
    for line in run(["dpkg-deb", "-c", deb_path]).stdout.splitlines():
        parts = line.split(None, 5)
        name = parts[5].split(" -> ")[0]
        files["/" + name.lstrip("./")] = (parts[0], parts[1])
    return files


def test_deb_control(deb):
    c = _control(deb)
    assert c["Package"] == "xscontainer-agent" and c["Version"] == VERSION + "-1"
    assert c["Architecture"] == "all"
    assert c["Depends"] == "python3 (>= 3.8)"
    assert int(c["Installed-Size"]) > 100 and c["Maintainer"] and c["Description"]
    assert c["Suggests"] == "docker.io | docker-ce" and "Recommends" not in c
    info = run(["dpkg-deb", "-I", deb]).stdout
    for script in ("postinst", "prerm", "postrm", "conffiles"):
        assert re.search(r"\b%s\b" % script, info)


def test_deb_files(deb, tmp_path):
    files = _deb_files(deb)
    expect = {"/usr/bin/xscontainer-agent": "-rwxr-xr-x",
              "/usr/lib/systemd/system/xscontainer-agent.service": "-rw-r--r--",
              "/etc/xscontainer-agent/agent.conf": "-rw-r--r--",
              LIB + "/vendor/docker/__init__.py": "-rw-r--r--",
              LIB + "/vendor/requests/__init__.py": "-rw-r--r--",
              LIB + "/vendor/urllib3/__init__.py": "-rw-r--r--"}
    for path, mode in expect.items():
        assert files.get(path, ("missing",))[0] == mode, path
    assert all(owner == "root/root" for _mode, owner in files.values())
    for src, package in ((N.GUEST_SRC, "guest_agent"), (N.CONTRACT_SRC, N.CONTRACT_PACKAGE)):
        for name in os.listdir(src):
            if name.endswith(".py"):
                assert LIB + "/%s/%s" % (package, name) in files, name
    assert not [p for p in files if p.endswith((".pyc", ".so"))]
    ctrl = str(tmp_path / "ctrl")
    run(["dpkg-deb", "-e", deb, ctrl])
    assert open(os.path.join(ctrl, "conffiles")).read().split() == [N.AGENT_CONF]
    for script in ("postinst", "prerm", "postrm"):
        run(["sh", "-n", os.path.join(ctrl, script)])
    postinst = open(os.path.join(ctrl, "postinst")).read()
    assert "systemctl enable xscontainer-agent.service" in postinst
    assert "compileall" in postinst


def test_vendored_guest_wheels_are_pure(deb):
    files = _deb_files(deb)
    dists = {p.split("/")[5] for p in files
             if p.startswith(LIB + "/vendor/") and ".dist-info/" in p}
    got = {wheels.normalize(d[:-len(".dist-info")].rsplit("-", 1)[0]):
           d[:-len(".dist-info")].rsplit("-", 1)[1] for d in dists}
    assert got == wheels.read_pins(N.GUEST_REQUIREMENTS)
    for dist in dists:
        wheel_file = [p for p in files if p.endswith(dist + "/WHEEL")]
        assert wheel_file, dist


def test_installed_deb_imports_from_its_own_paths(deb, scratch):
    run(["dpkg-deb", "-x", deb, scratch])
    lib = scratch + LIB
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else shutil.which("python3")
    has_agent = os.path.exists(os.path.join(lib, "guest_agent", "agent.py"))
    code = """
import sys
sys.path[:0] = [%(lib)r, %(lib)r + '/vendor']
sys.dont_write_bytecode = True
import docker, requests, urllib3
assert docker.__file__.startswith(%(lib)r), docker.__file__
# a round trip over a Unix socket through the vendored requests/urllib3 stack
import http.server, json, socketserver, threading
class Engine(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps([{"Id": "c1"}] if "/containers/" in self.path else {}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = socketserver.UnixStreamServer(%(sock)r, Engine)
threading.Thread(target=server.serve_forever, daemon=True).start()
client = docker.APIClient(base_url='unix://' + %(sock)r, version='1.41')
assert client.containers() == [{"Id": "c1"}], client.containers()
import guest_agent
assert guest_agent.__file__.startswith(%(lib)r)
if %(has_agent)r:
    from guest_agent.agent import main
    assert callable(main)
print('ok', docker.__version__)
""" % {"lib": lib, "has_agent": has_agent, "sock": os.path.join(scratch, "docker.sock")}
    # -I -S: only the standard library and the package's own files
    out = run([python, "-I", "-S", "-c", code]).stdout
    assert out.startswith("ok 7.")
    launcher = open(os.path.join(scratch, "usr/bin/xscontainer-agent")).read()
    assert launcher.startswith("#!/usr/bin/python3\n")
    assert "from guest_agent.agent import main" in launcher
    assert '"/usr/lib/xscontainer-agent", "/usr/lib/xscontainer-agent/vendor"' in launcher


def test_shipped_config_is_what_the_agent_reads(deb, scratch):
    run(["dpkg-deb", "-x", deb, scratch])
    conf = scratch + N.AGENT_CONF
    from guest_agent import config
    settings = config.load(conf, must_exist=True)
    assert settings.allow == ()          # the request channel is off by default


def test_guest_unit_is_hardened(deb, scratch):
    run(["dpkg-deb", "-x", deb, scratch])
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(os.path.join(scratch, "usr/lib/systemd/system/xscontainer-agent.service"))
    svc = unit["Service"]
    assert svc["ExecStart"] == "/usr/bin/xscontainer-agent"
    assert svc["Restart"] == "always"
    for key, value in (("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                       ("PrivateTmp", "yes"), ("NoNewPrivileges", "yes"),
                       ("DeviceAllow", "/dev/xen/xenbus rw"), ("DevicePolicy", "closed"),
                       ("RestrictAddressFamilies", "AF_UNIX")):
        assert svc.get(key) == value, key
    assert "User" not in svc                      # root: the device and the socket are root's
    assert "ReadWritePaths" not in svc            # nothing to write
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    if shutil.which("systemd-analyze"):
        proc = subprocess.run(["systemd-analyze", "verify", "--root", scratch,
                               "xscontainer-agent.service"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, universal_newlines=True)
        assert "Unknown key" not in proc.stdout and "Unknown lvalue" not in proc.stdout


def test_agent_rpm(agent_rpm):
    files = rpm_files(agent_rpm)
    assert files["/usr/bin/xscontainer-agent"][0] == "-rwxr-xr-x"
    assert files[LIB + "/vendor/docker/__init__.py"][0] == "-rw-r--r--"
    assert "/usr/lib/systemd/system/xscontainer-agent.service" in files
    assert rpm_q(agent_rpm, "--configfiles").split() == [N.AGENT_CONF]
    assert rpm_q(agent_rpm, "--qf", "%{ARCH} %{PAYLOADCOMPRESSOR}") == "noarch xz"
    requires = rpm_q(agent_rpm, "--requires").splitlines()
    assert "python3 >= 3.8" in requires
    assert not [r for r in requires if "python(abi)" in r or ".so" in r]
    scripts = rpm_q(agent_rpm, "--scripts")
    assert "systemctl enable xscontainer-agent.service" in scripts and "compileall" in scripts


def test_agent_rpm_and_deb_hold_the_same_files(agent_rpm, deb):
    rpm_side = {p: m for p, (m, _size) in rpm_files(agent_rpm).items() if m.startswith("-")}
    deb_side = {p: m for p, (m, _owner) in _deb_files(deb).items() if m.startswith("-")}
    assert rpm_side == deb_side


def _install_script(text):
    """The write_files content block of the snippet (a YAML literal block, 6-space indent)."""
    lines = text.splitlines()
    start = lines.index("    content: |") + 1
    block = []
    for line in lines[start:]:
        if line and not line.startswith("      "):
            break
        block.append(line[6:])
    return "\n".join(block) + "\n"


def test_cloud_init_snippet(built):
    path = built["files"][N.CLOUD_INIT_FILE]
    text = open(path).read()
    assert text.startswith("#cloud-config\n")
    script = _install_script(text)
    assert script.startswith("#!/bin/sh\n")
    assert N.agent_deb_name(VERSION) in script and N.agent_rpm_name(VERSION) in script
    assert "systemctl enable --now xscontainer-agent.service" in script
    run(["sh", "-n"], input_text=script)
    assert "  - [sh, /run/xscontainer-agent-install.sh, " in text
    try:
        import yaml
    except ImportError:
        return
    doc = yaml.safe_load(text)
    assert doc["write_files"][0]["content"] == script
    assert doc["runcmd"][0][:2] == ["sh", doc["write_files"][0]["path"]]


def test_cloud_init_script_installs_from_a_directory(built, tmp_path):
    """Run the snippet's script with stand-ins for apt-get and systemctl: it fetches the
    .deb from the directory given and enables the unit."""
    script = tmp_path / "install.sh"
    script.write_text(_install_script(open(built["files"][N.CLOUD_INIT_FILE]).read()))
    fake = tmp_path / "bin"
    fake.mkdir()
    log = tmp_path / "calls"
    for tool in ("apt-get", "systemctl"):
        (fake / tool).write_text("#!/bin/sh\necho %s \"$@\" >> %s\n" % (tool, log))
        (fake / tool).chmod(0o755)
    env = dict(os.environ, PATH="%s:/usr/bin:/bin" % fake)
    run(["sh", str(script), built["out"] + "/"], env=env)
    calls = log.read_text()
    assert re.search(r"apt-get install -y -q \S+/%s" % re.escape(N.agent_deb_name(VERSION)),
                     calls)
    assert "systemctl enable --now xscontainer-agent.service" in calls
