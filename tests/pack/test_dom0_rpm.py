"""The dom0 RPM: layout, metadata, scriptlets, vendored cp36 wheels, and an install into a
scratch root checked from the installed files."""
import configparser
import os
import re
import struct
import subprocess
import xml.etree.ElementTree as ET


from tests import prereq
from pack import names as N
from tests.pack.conftest import VERSION, rpm_files, rpm_q, run

# what EL7's rpm 4.11 understands; anything else in rpmlib() makes the RPM uninstallable
EL7_RPMLIB = {"CompressedFileNames", "FileDigests", "PayloadFilesHavePrefix", "PayloadIsXz"}


def test_file_layout_and_modes(dom0_rpm):
    files = rpm_files(dom0_rpm)
    expect = {
        "/etc/xapi.d/plugins/xscontainer": "-rwxr-xr-x",
        "/usr/bin/xscontainer": "-rwxr-xr-x",
        "/usr/lib/xscontainer-ng/dom0_plugin/__init__.py": "-rw-r--r--",
        "/usr/lib/xscontainer-ng/dom0_plugin/plugins/xscontainer": "-rwxr-xr-x",
        "/usr/lib/xscontainer-ng/dom0_plugin/bin/xscontainer": "-rwxr-xr-x",
        "/usr/lib/systemd/system/xscontainer-monitor.service": "-rw-r--r--",
        "/usr/lib/systemd/system-preset/90-xscontainer-ng.preset": "-rw-r--r--",
        "/etc/logrotate.d/xscontainer-ng": "-rw-r--r--",
        "/etc/xensource/bugtool/xscontainer-ng.xml": "-rw-r--r--",
        "/etc/xensource/bugtool/xscontainer-ng/stuff.xml": "-rw-r--r--",
        "/etc/xensource/installed-repos/xscontainer-ng/XS-REPOSITORY": "-rw-r--r--",
        "/usr/lib/xscontainer-ng/vendor": "drwxr-xr-x",
    }
    for path, mode in expect.items():
        assert files.get(path, ("missing",))[0] == mode, path
    # every executable plugin of the source tree is a xapi plugin, and every .py is shipped
    src = N.DOM0_SRC
    for name in os.listdir(os.path.join(src, "plugins")):
        if os.access(os.path.join(src, "plugins", name), os.X_OK):
            assert files["/etc/xapi.d/plugins/" + name][0] == "-rwxr-xr-x"
    for name in os.listdir(src):
        if name.endswith(".py"):
            assert "/usr/lib/xscontainer-ng/dom0_plugin/" + name in files
    for name in os.listdir(os.path.join(src, "bin")):
        assert "/usr/lib/xscontainer-ng/dom0_plugin/bin/" + name in files
    # the shared contract package, whole; nothing of the guest agent itself
    shipped = {p.rsplit("/", 1)[1] for p in files
               if p.startswith("/usr/lib/xscontainer-ng/xsc_contract/") and p.endswith(".py")}
    assert shipped == {n for n in os.listdir(N.CONTRACT_SRC) if n.endswith(".py")}
    assert not any("/guest_agent/" in p for p in files)
    assert not any(p.endswith(".pyc") and "__pycache__" not in p for p in files)


def test_metadata(dom0_rpm):
    info = rpm_q(dom0_rpm, "--qf", "%{NAME}|%{VERSION}|%{RELEASE}|%{ARCH}|%{PAYLOADCOMPRESSOR}")
    assert info == "xscontainer-ng|%s|1|noarch|xz" % VERSION
    requires = rpm_q(dom0_rpm, "--requires").splitlines()
    rpmlib = {re.match(r"rpmlib\((\w+)\)", r).group(1) for r in requires if r.startswith("rpmlib(")}
    assert rpmlib <= EL7_RPMLIB
    plain = {r.split()[0] for r in requires if not r.startswith(("rpmlib(", "/bin/sh"))}
    assert plain == {"python3", "logrotate", "systemd"}
    # no automatic dependencies from the vendored ELF objects
    assert not any(".so" in r for r in requires)
    assert rpm_q(dom0_rpm, "--provides").split() == ["xscontainer-ng", "=", VERSION + "-1"]
    assert rpm_q(dom0_rpm, "--obsoletes").split() == ["xscontainer"]
    assert rpm_q(dom0_rpm, "--configfiles").split() == ["/etc/logrotate.d/xscontainer-ng"]


def test_scriptlets_el7_style(dom0_rpm):
    scripts = rpm_q(dom0_rpm, "--scripts")
    parts = re.split(r"^(\w+) scriptlet \(using /bin/sh\):$", scripts, flags=re.M)
    by_name = dict(zip(parts[1::2], parts[2::2]))
    assert set(by_name) == {"postinstall", "preuninstall", "postuninstall"}
    unit = "xscontainer-monitor.service"
    post, preun, postun = (by_name[k] for k in ("postinstall", "preuninstall", "postuninstall"))
    assert "systemctl preset %s" % unit in post and "systemctl start %s" % unit in post
    assert "daemon-reload" in post and "$1 -eq 1" in post
    assert "$1 -eq 0" in preun and "--no-reload disable %s" % unit in preun
    assert "systemctl stop %s" % unit in preun
    assert "daemon-reload" in postun and "try-restart %s" % unit in postun
    assert "%systemd" not in scripts and "%{" not in scripts
    for body in by_name.values():
        run(["sh", "-n"], input_text=body)


def test_vendored_wheels_are_cp36(dom0_rpm):
    files = rpm_files(dom0_rpm)
    vendor = "/usr/lib/xscontainer-ng/vendor/"
    dists = {p[len(vendor):].split("/")[0] for p in files if p.startswith(vendor)}
    dists = {d for d in dists if d.endswith(".dist-info")}
    names = dict(d[:-len(".dist-info")].rsplit("-", 1) for d in dists)
    names = {re.sub(r"[-_.]+", "-", k).lower(): v for k, v in names.items()}
    pins = {}
    with open(N.DOM0_REQUIREMENTS) as f:
        for line in f:
            line = line.split("#")[0].strip()
            if line:
                name, version = line.split("==")
                pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    assert names == pins
    sos = [p for p in files if p.startswith(vendor) and re.search(r"\.so(\.|$)", p)]
    assert sos, "the paramiko stack has compiled extensions"
    for p in sos:
        base = os.path.basename(p)
        assert (base.endswith(".cpython-36m-x86_64-linux-gnu.so") or base.endswith(".abi3.so")
                or ".libs/" in p), p
    # the WHEEL tags recorded in each dist-info say the same
    for dist in dists:
        assert vendor + dist + "/WHEEL" in files


def test_bugtool_entry(dom0_root):
    root = dom0_root
    cap = ET.parse(os.path.join(root, "etc/xensource/bugtool/xscontainer-ng.xml")).getroot()
    assert cap.tag == "capability"
    assert cap.get("pii") in ("no", "yes", "maybe", "if_customized")
    assert cap.get("checked") == "true" and int(cap.get("max_size")) > 0
    stuff = ET.parse(os.path.join(root, "etc/xensource/bugtool/xscontainer-ng/stuff.xml"))
    assert stuff.getroot().tag == "collect"
    directory = stuff.getroot().find("directory")
    assert directory.text == "/var/log"
    for log in N.LOG_FILES:
        assert re.match(directory.get("pattern"), os.path.basename(log))
        assert re.match(directory.get("pattern"), os.path.basename(log) + ".1.gz")
    assert not re.match(directory.get("pattern"), "xensource.log")


def test_xs_repository_and_unit(dom0_root):
    root = dom0_root
    repo = ET.parse(os.path.join(
        root, "etc/xensource/installed-repos/xscontainer-ng/XS-REPOSITORY")).getroot()
    # xapi: originator, name, version (build optional); first child element's text
    assert (repo.get("originator"), repo.get("name")) == (N.REPO_ORIGINATOR, N.REPO_NAME)
    assert repo.get("version") == VERSION and repo.get("build") == "1"
    assert list(repo)[0].text.strip()
    unit = configparser.ConfigParser(strict=False)
    unit.optionxform = str
    unit.read(os.path.join(root, "usr/lib/systemd/system/xscontainer-monitor.service"))
    svc = unit["Service"]
    assert svc["ExecStart"] == ("/usr/bin/python3 "
                                "/usr/lib/xscontainer-ng/dom0_plugin/bin/xscontainer-monitor")
    assert svc["Restart"] == "always"
    assert "xapi.service" in unit["Unit"]["After"] and unit["Unit"]["Wants"] == "xapi.service"
    # systemd 219 (EL7): ProtectSystem=strict and ReadWritePaths do not exist there
    assert svc["ProtectSystem"] == "full" and "ReadWritePaths" not in svc
    assert svc["NoNewPrivileges"] == "yes" and svc["PrivateTmp"] == "yes"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    with open(os.path.join(root, "usr/lib/systemd/system-preset/90-xscontainer-ng.preset")) as f:
        assert "enable xscontainer-monitor.service" in f.read()
    with open(os.path.join(root, "etc/logrotate.d/xscontainer-ng")) as f:
        rotate = f.read()
    for log in N.LOG_FILES:
        assert log in rotate


def test_install_into_scratch_root(dom0_root):
    scratch = dom0_root
    assert run(["rpm", "--root", scratch, "-q", "xscontainer-ng"]).stdout.strip() == \
        "xscontainer-ng-%s-1.noarch" % VERSION
    lib = os.path.join(scratch, "usr/lib/xscontainer-ng")
    for rel in ("dom0_plugin/__init__.py", "dom0_plugin/bin/xscontainer", "vendor/paramiko",
                "vendor/click", "vendor/cryptography", "vendor/nacl", "vendor/bcrypt"):
        assert os.path.exists(os.path.join(lib, rel)), rel
    plugin = os.path.join(scratch, "etc/xapi.d/plugins/xscontainer")
    assert os.stat(plugin).st_mode & 0o777 == 0o755
    assert os.stat(os.path.join(scratch, "usr/bin/xscontainer")).st_mode & 0o777 == 0o755
    # rpm -V: every installed file matches the package (digests, modes)
    assert run(["rpm", "--root", scratch, "-V", "--nodeps", "xscontainer-ng"],
               check=False).stdout == ""


def test_installed_tree_runs_on_python36(dom0_root, python36):
    lib = os.path.join(dom0_root, "usr/lib/xscontainer-ng")
    pycs = []
    for root, _dirs, files in os.walk(os.path.join(lib, "dom0_plugin")):
        pycs += [f for f in files if f.endswith(".pyc")]
    assert pycs and all(f.endswith(".cpython-36.pyc") for f in pycs)
    # rpm kept the sources' mtimes, so the shipped .pyc stay valid: dom0 never rewrites them
    for root, _dirs, files in os.walk(lib):
        for f in files:
            if f.endswith(".py"):
                pyc = os.path.join(root, "__pycache__", f[:-3] + ".cpython-36.pyc")
                with open(pyc, "rb") as h:
                    header = h.read(12)
                st = os.stat(os.path.join(root, f))
                assert struct.unpack("<II", header[4:12]) == (int(st.st_mtime) & 0xFFFFFFFF,
                                                              st.st_size & 0xFFFFFFFF), pyc
    code = """
import importlib, os, sys
sys.path[:0] = [%(lib)r, %(lib)r + '/vendor']
sys.dont_write_bytecode = True
# every top-level module of every vendored distribution imports
for dist in sorted(os.listdir(%(lib)r + '/vendor')):
    if dist.endswith('.dist-info'):
        top = os.path.join(%(lib)r, 'vendor', dist, 'top_level.txt')
        mods = open(top).read().split() if os.path.exists(top) else [dist.split('-')[0]]
        here = {n.split('.')[0] for n in os.listdir(%(lib)r + '/vendor')}
        for mod in mods:
            if mod in here:    # top_level.txt may name extensions that live in a package
                importlib.import_module(mod)
import paramiko, click, nacl.signing, bcrypt
from cryptography.hazmat.primitives.asymmetric import ed25519
ed25519.Ed25519PrivateKey.generate()
nacl.signing.SigningKey.generate()
assert bcrypt.checkpw(b'x', bcrypt.hashpw(b'x', bcrypt.gensalt(4)))
paramiko.ECDSAKey.generate()
assert paramiko.__file__.startswith(%(lib)r), paramiko.__file__
for tree in ('dom0_plugin', 'xsc_contract'):
  for top, dirs, files in os.walk(%(lib)r + '/' + tree):
    dirs[:] = [d for d in dirs if os.path.exists(os.path.join(top, d, '__init__.py'))]
    package = os.path.relpath(top, %(lib)r).replace('/', '.')
    for name in sorted(files):
        if name.endswith('.py') and name != '__main__.py':
            module = package if name == '__init__.py' else package + '.' + name[:-3]
            importlib.import_module(module)
print('ok')
""" % {"lib": lib}
    # -I -S: nothing from the build machine's site-packages may fill a gap
    out = run([python36, "-I", "-S", "-W", "ignore", "-c", code]).stdout
    assert out.strip().endswith("ok")


def test_vendored_objects_fit_glibc_217(dom0_root):
    """dom0 is EL7 (glibc 2.17): no vendored ELF object may need a newer symbol version."""
    if not subprocess.run(["which", "objdump"], stdout=subprocess.DEVNULL).returncode == 0:
        prereq.missing("objdump (binutils) missing (make setup)")
    vendor = os.path.join(dom0_root, "usr/lib/xscontainer-ng/vendor")
    newest = (0, 0)
    for top, _dirs, files in os.walk(vendor):
        for f in files:
            if re.search(r"\.so(\.|$)", f):
                out = run(["objdump", "-T", os.path.join(top, f)]).stdout
                for m in re.finditer(r"GLIBC_(\d+)\.(\d+)", out):
                    newest = max(newest, (int(m.group(1)), int(m.group(2))))
    assert (2, 0) < newest <= (2, 17), newest
