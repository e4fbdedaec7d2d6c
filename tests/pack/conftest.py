"""Build the pack once per session (signed with a throwaway RSA key, and unsigned) and give
the tests ways to look inside the outputs without mounting anything."""
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from pack import names as N

REPO = N.REPO
TOOLS = ("rpmbuild", "rpmsign", "createrepo_c", "genisoimage", "isoinfo", "gpg", "gpgconf",
         "dpkg-deb")
VERSION = "0.1.0"


def run(argv, env=None, input_text=None, check=True):
    proc = subprocess.run(argv, env=env, input=input_text, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True)
    if check and proc.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s\n%s" % (argv, proc.returncode, proc.stdout,
                                                          proc.stderr))
    return proc


def rpm_q(path, *args):
    """Output of rpm -qp ARGS PATH."""
    return run(["rpm", "-qp"] + list(args) + [path]).stdout


def rpm_files(path):
    """{installed path: (mode string, size)} of a package file."""
    out = rpm_q(path, "--qf", "[%{FILEMODES:perms} %{FILESIZES} %{FILENAMES}\n]")
    files = {}
    for line in out.splitlines():
        perms, size, name = line.split(" ", 2)
        files[name] = (perms, int(size))
    return files


def iso_list(iso):
    return run(["isoinfo", "-f", "-R", "-i", iso]).stdout.split()


def iso_read(iso, path):
    """A file of the ISO (Rock Ridge name), as bytes."""
    proc = subprocess.run(["isoinfo", "-R", "-i", iso, "-x", path], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, check=True)
    return proc.stdout


@pytest.fixture(scope="session")
def tools():
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        pytest.fail("missing build tools %s: run `make setup` (tools/setup.sh)" % missing)


@pytest.fixture(scope="session")
def gnupghome(tools):
    """A throwaway GnuPG home (short path: gpg-agent's socket lives there) with one RSA key
    that has no passphrase."""
    home = tempfile.mkdtemp(prefix="xscng-gpg-")
    env = dict(os.environ, GNUPGHOME=home)
    try:
        run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key",
             "xscontainer-ng test key <test@xscontainer-ng.invalid>", "rsa2048", "sign", "1d"],
            env=env)
        out = run(["gpg", "--batch", "--with-colons", "--list-secret-keys"], env=env).stdout
        fpr = [l.split(":")[9] for l in out.splitlines() if l.startswith("fpr:")][0]
        yield {"home": home, "env": env, "fpr": fpr}
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env)
        shutil.rmtree(home, ignore_errors=True)


def _build(out, env, extra=()):
    argv = [sys.executable, "-m", "pack", "--out", out, "--version", VERSION] + list(extra)
    proc = run(argv, env=dict(env, PYTHONPATH=REPO))
    return {os.path.basename(p): p for p in proc.stdout.split()}, proc.stderr


@pytest.fixture(scope="session")
def built(gnupghome, tmp_path_factory):
    """The signed build: {file name: path} plus the key and the build's warnings."""
    out = str(tmp_path_factory.mktemp("pack-signed"))
    files, stderr = _build(out, gnupghome["env"], ["--sign-key", gnupghome["fpr"]])
    return {"files": files, "out": out, "key": gnupghome, "stderr": stderr}


@pytest.fixture(scope="session")
def unsigned(tools, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("pack-unsigned"))
    files, stderr = _build(out, os.environ)
    return {"files": files, "out": out, "stderr": stderr}


@pytest.fixture(scope="session")
def dom0_rpm(built):
    return built["files"][N.dom0_rpm_name(VERSION)]


@pytest.fixture(scope="session")
def iso(built):
    return built["files"][N.iso_name(VERSION)]


@pytest.fixture(scope="session")
def dom0_root(dom0_rpm, tmp_path_factory):
    """The dom0 RPM installed (rpm --root, no scripts) into a scratch root: what
    `python -m lab up --dom0-root ROOT` runs from. Removed at the end of the session."""
    root = str(tmp_path_factory.mktemp("dom0-root"))
    run(["rpm", "--root", root, "--initdb"])
    run(["rpm", "--root", root, "-i", "--nodeps", "--noscripts", dom0_rpm])
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def scratch(tmp_path):
    """A scratch root under the test's tmp dir, removed afterwards."""
    root = tmp_path / "root"
    root.mkdir()
    yield str(root)
    shutil.rmtree(str(root), ignore_errors=True)
