"""The supplemental pack ISO: update.xml, the yum repository, the update RPM, the signatures
(checked the way xapi and yum check them)."""
import gzip
import hashlib
import os
import re
import shutil
import tempfile
import xml.etree.ElementTree as ET

import pytest

from pack import names as N
from tests.pack.conftest import VERSION, iso_list, iso_read, rpm_files, rpm_q, run

REPO_NS = {"r": "http://linux.duke.edu/metadata/repo",
           "c": "http://linux.duke.edu/metadata/common",
           "rpm": "http://linux.duke.edu/metadata/rpm"}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def test_iso_listing(iso):
    names = set(iso_list(iso))
    for path in ("/update.xml", "/update.xml.asc", "/repodata/repomd.xml",
                 "/repodata/repomd.xml.asc", "/" + N.KEY_FILE,
                 "/Packages/" + N.dom0_rpm_name(VERSION),
                 "/Packages/" + N.update_rpm_name(VERSION)):
        assert path in names, path
    assert not [n for n in names if n.endswith((".zst", ".zck", ".sqlite", ".bz2", ".xz"))]


def test_update_xml_fields(iso, dom0_rpm):
    root = ET.fromstring(iso_read(iso, "/update.xml"))
    assert root.tag == "update"
    assert UUID_RE.match(root.get("uuid")) and root.get("uuid") == N.update_uuid(VERSION)
    assert root.get("name-label") == "xscontainer-ng" and root.get("version") == VERSION
    assert int(root.get("installation-size")) >= int(rpm_q(dom0_rpm, "--qf", "%{SIZE}"))
    assert root.get("key") == N.KEY_FILE        # xapi: gpgkey=file:///etc/pki/rpm-gpg/<key>
    assert root.get("enforce-homogeneity") == "false"
    # xapi raises Bad_update_info for guidance outside its list; we need none
    assert root.get("after-apply-guidance") in (None, "")
    desc = root.find("name-description")
    assert desc is not None and desc.text.strip() and not list(desc)


def test_update_uuid_is_stable_per_version():
    assert N.update_uuid("0.1.0") == N.update_uuid("0.1.0")
    assert N.update_uuid("0.1.0") != N.update_uuid("0.1.1")


def test_repodata_gz_with_comps_group_update(iso):
    repomd = ET.fromstring(iso_read(iso, "/repodata/repomd.xml"))
    data = {d.get("type"): d.find("r:location", REPO_NS).get("href")
            for d in repomd.findall("r:data", REPO_NS)}
    assert {"primary", "filelists", "other", "group"} <= set(data)
    for kind in ("primary", "filelists", "other"):
        assert data[kind].endswith(".xml.gz"), data[kind]
    assert not any(h.endswith((".zst", ".zck", ".bz2", ".xz")) for h in data.values())
    assert not any(k.endswith("_db") for k in data)
    comps = ET.fromstring(iso_read(iso, "/" + data["group"]))
    groups = {g.findtext("id"): g for g in comps.findall("group")}
    reqs = [(p.text, p.get("type")) for p in groups["update"].iter("packagereq")]
    assert reqs == [(N.UPDATE_PACKAGE, "mandatory")]
    primary = ET.fromstring(gzip.decompress(iso_read(iso, "/" + data["primary"])))
    pkgs = {p.findtext("c:name", namespaces=REPO_NS):
            p.find("c:location", REPO_NS).get("href")
            for p in primary.findall("c:package", REPO_NS)}
    assert pkgs == {"xscontainer-ng": "Packages/" + N.dom0_rpm_name(VERSION),
                    N.UPDATE_PACKAGE: "Packages/" + N.update_rpm_name(VERSION)}


def test_update_rpm_records_the_update(built, iso):
    path = built["files"][N.update_rpm_name(VERSION)]
    applied = "/var/update/applied/" + N.update_uuid(VERSION)
    assert list(rpm_files(path)) == [applied]
    requires = [r for r in rpm_q(path, "--requires").splitlines() if not r.startswith("rpmlib(")]
    assert requires == ["xscontainer-ng = %s-1" % VERSION]
    # the ISO carries the very RPMs of the output directory
    assert iso_read(iso, "/Packages/" + N.update_rpm_name(VERSION)) == open(path, "rb").read()


def test_update_rpm_applied_file_is_update_xml(built, iso, scratch):
    path = built["files"][N.update_rpm_name(VERSION)]
    run(["rpm", "--root", scratch, "--initdb"])
    run(["rpm", "--root", scratch, "-i", "--nodeps", "--noscripts", path])
    with open(os.path.join(scratch, "var/update/applied", N.update_uuid(VERSION)), "rb") as f:
        assert f.read() == iso_read(iso, "/update.xml")


def test_signatures_verify(built, iso, tmp_path):
    env = built["key"]["env"]
    for name in ("update.xml", "repodata/repomd.xml"):
        data, sig = tmp_path / "data", tmp_path / "data.asc"
        data.write_bytes(iso_read(iso, "/" + name))
        sig.write_bytes(iso_read(iso, "/" + name + ".asc"))
        assert sig.read_text().startswith("-----BEGIN PGP SIGNATURE-----")
        out = run(["gpg", "--batch", "--status-fd", "1", "--verify", str(sig), str(data)],
                  env=env).stdout
        assert "VALIDSIG " + built["key"]["fpr"] in out


def test_xapi_style_trust(built, iso):
    """The README's trust procedure, then the check xapi makes (ocaml/gpg/gpg.ml): its own
    homedir and keyring, GOODSIG and TRUST_ULTIMATE required."""
    home = tempfile.mkdtemp(prefix="xscng-xapi-")
    try:
        keyring = os.path.join(home, "pubring.gpg")
        key = os.path.join(home, N.KEY_FILE)
        with open(key, "wb") as f:
            f.write(iso_read(iso, "/" + N.KEY_FILE))
        base = ["gpg", "--batch", "--homedir", home, "--no-default-keyring", "--keyring", keyring]
        run(base + ["--import", key])
        listing = run(base + ["--with-colons", "--with-fingerprint", key]).stdout
        fpr = [l.split(":")[9] for l in listing.splitlines() if l.startswith("fpr:")][0]
        assert fpr == built["key"]["fpr"]
        run(["gpg", "--batch", "--homedir", home, "--import-ownertrust"],
            input_text="%s:6:\n" % fpr)
        for name in ("update.xml", "repodata/repomd.xml"):
            data = os.path.join(home, "data")
            with open(data, "wb") as f:
                f.write(iso_read(iso, "/" + name))
            with open(data + ".asc", "wb") as f:
                f.write(iso_read(iso, "/" + name + ".asc"))
            status = run(base + ["--status-fd", "1", "--verify", data + ".asc", data]).stdout
            assert "[GNUPG:] GOODSIG" in status and "[GNUPG:] TRUST_ULTIMATE" in status
    finally:
        run(["gpgconf", "--homedir", home, "--kill", "gpg-agent"], check=False)
        shutil.rmtree(home, ignore_errors=True)


def test_rpm_signatures_verify(built, tmp_path):
    db = str(tmp_path / "rpmdb")
    os.makedirs(db)
    run(["rpm", "--dbpath", db, "--initdb"])
    run(["rpmkeys", "--dbpath", db, "--import", built["files"][N.KEY_FILE]])
    short = built["key"]["fpr"][-16:].lower()
    for name in (N.dom0_rpm_name(VERSION), N.update_rpm_name(VERSION),
                 N.agent_rpm_name(VERSION)):
        path = built["files"][name]
        out = run(["rpm", "--dbpath", db, "-K", path]).stdout
        assert "signatures OK" in out, out
        # a v4 RSA/SHA256 header signature: what EL7's rpm 4.11 verifies
        sig = rpm_q(path, "--qf", "%{RSAHEADER:pgpsig}")
        assert sig.startswith("RSA/SHA256") and sig.endswith(short), sig


def test_public_key_and_sums(built, iso):
    out = built["out"]
    key = built["files"][N.KEY_FILE]
    assert open(key, "rb").read() == iso_read(iso, "/" + N.KEY_FILE)
    sums = built["files"]["SHA256SUMS"]
    listed = {}
    for line in open(sums):
        digest, name = line.split()
        listed[name] = digest
    for name in (N.dom0_rpm_name(VERSION), N.update_rpm_name(VERSION), N.iso_name(VERSION),
                 N.agent_deb_name(VERSION), N.agent_rpm_name(VERSION), N.CLOUD_INIT_FILE,
                 N.KEY_FILE):
        with open(os.path.join(out, name), "rb") as f:
            assert listed.pop(name) == hashlib.sha256(f.read()).hexdigest(), name
    assert not listed
    run(["gpg", "--batch", "--verify", sums + ".asc", sums], env=built["key"]["env"])


def test_unsigned_build(unsigned):
    files = unsigned["files"]
    assert "SHA256SUMS.asc" not in files and N.KEY_FILE not in files
    iso = files[N.iso_name(VERSION)]
    names = set(iso_list(iso))
    assert "/update.xml.asc" not in names and "/" + N.KEY_FILE not in names
    root = ET.fromstring(iso_read(iso, "/update.xml"))
    assert root.get("key") is None and root.get("uuid") == N.update_uuid(VERSION)
    assert "unsigned build" in unsigned["stderr"]
    assert rpm_q(files[N.dom0_rpm_name(VERSION)], "--qf", "%{RSAHEADER:pgpsig}") == "(none)"


def test_refuses_a_key_dom0_cannot_verify(tmp_path):
    """dom0's gpg 2.0 / rpm 4.11 verify RSA and DSA only: an EdDSA key is refused early."""
    home = tempfile.mkdtemp(prefix="xscng-ed-")
    env = dict(os.environ, GNUPGHOME=home)
    try:
        run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "ed <ed@invalid>",
             "ed25519", "sign", "1d"], env=env)
        from pack.signing import Signer
        from pack.tools import BuildError
        with pytest.raises(BuildError, match="RSA"):
            Signer("ed@invalid", env=env)
    finally:
        run(["gpgconf", "--kill", "gpg-agent"], env=env, check=False)
        shutil.rmtree(home, ignore_errors=True)
