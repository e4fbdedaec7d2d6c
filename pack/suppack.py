"""The supplemental pack ISO (XS 8 / XCP-ng 8.x update format), installable with
`xe-install-supplemental-pack`.

How xapi consumes it (xen-api: ocaml/xapi/xapi_pool_update.ml, scripts/extensions/
pool_update.{precheck,apply}):
- `xe update-upload` mounts the ISO, parses /update.xml (<update> attributes uuid, name-label,
  version required; key, installation-size, after-apply-guidance, enforce-homogeneity
  optional; a <name-description> text child required) and verifies update.xml.asc and
  repodata/repomd.xml.asc against its keyring (/opt/xensource/gpg, ultimately trusted keys);
- `update-apply` writes a yum config whose repo id is the name-label (gpgcheck and
  repo_gpgcheck on when key= is set, gpgkey=file:///etc/pki/rpm-gpg/<key>) and runs
  `yum install @update`: the comps group `update` pulls update-<label>, which requires the
  payload;
- then `pool_update.resync_host` lists /var/update/applied/<uuid> files as the host's
  updates: update-<label> installs update.xml there.
"""
import os
import shutil
from xml.sax.saxutils import escape, quoteattr

from pack import names as N, rpm, stage as S
from pack.tools import BuildError, require, run

DESCRIPTION = ("xscontainer-ng %s: Docker container management for VMs (xapi plugin "
               "xscontainer, xscontainer CLI, xscontainer-monitor service).")
UPDATE_RPM_DESCRIPTION = """\
Marks the xscontainer-ng supplemental pack as applied on this host (xapi lists
/var/update/applied/<uuid> in host.updates) and pulls in the payload package.
"""
ISO_VOLUME = "xscontainer-ng"


def update_xml(version, installation_size, key_name=None):
    """The update.xml document (xapi parses it with xml-light: keep it plain)."""
    attrs = [("uuid", N.update_uuid(version)), ("name-label", N.UPDATE_LABEL),
             ("version", version), ("installation-size", str(installation_size)),
             ("enforce-homogeneity", "false")]
    if key_name:
        attrs.append(("key", key_name))
    # no after-apply-guidance: plugins run fresh per call and the RPM restarts the monitor
    # no XML declaration, like XenServer's own build-update output
    return ("<update %s>\n  <name-description>%s</name-description>\n"
            "</update>\n" % (" ".join("%s=%s" % (k, quoteattr(v)) for k, v in attrs),
                             escape(DESCRIPTION % version)))


def comps_xml():
    """The yum group file: group `update` requires update-<label>."""
    return """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE comps PUBLIC "-//Red Hat, Inc.//DTD Comps info//EN" "comps.dtd">
<comps>
  <group>
    <id>update</id>
    <name>%(label)s</name>
    <description>%(label)s supplemental pack</description>
    <default>true</default>
    <uservisible>true</uservisible>
    <packagelist>
      <packagereq type="mandatory">%(package)s</packagereq>
    </packagelist>
  </group>
</comps>
""" % {"label": N.UPDATE_LABEL, "package": N.UPDATE_PACKAGE}


def build_update_rpm(version, update_doc, out_dir, workdir):
    """update-<label>: /var/update/applied/<uuid> (= update.xml), requires the payload."""
    stage = os.path.join(workdir, "update-root")
    S.put_file(stage, "%s/%s" % (N.APPLIED_DIR, N.update_uuid(version)), text=update_doc)
    pkg = rpm.RpmPackage(
        name=N.UPDATE_PACKAGE, version=version, release=N.RELEASE,
        summary="xscontainer-ng supplemental pack (update record)",
        description=UPDATE_RPM_DESCRIPTION, license=N.LICENSE,
        requires=["%s = %s-%s" % (N.DOM0_PACKAGE, version, N.RELEASE)])
    return rpm.build(pkg, stage, out_dir)


def make_repo(iso_dir, groupfile):
    """yum metadata with gz compression only (EL7's yum cannot read zstd), no sqlite."""
    require("createrepo_c")
    run(["createrepo_c", "--quiet", "--general-compress-type=gz", "--no-database",
         "--groupfile", groupfile, iso_dir])
    names = os.listdir(os.path.join(iso_dir, "repodata"))
    if any(n.endswith((".zst", ".zck", ".bz2", ".xz")) for n in names):
        raise BuildError("repodata holds non-gz metadata: %s" % ", ".join(sorted(names)))


def make_iso(iso_dir, iso_path):
    """Rock Ridge (xapi loop-mounts it on Linux) + Joliet with long names."""
    require("genisoimage")
    run(["genisoimage", "-quiet", "-r", "-J", "-joliet-long", "-V", ISO_VOLUME,
         "-o", iso_path, iso_dir])
    return iso_path


def build(out_dir, version, dom0_rpm_path, workdir, signer=None):
    """Build update-<label> and the ISO into out_dir; return (update_rpm, iso) paths.

    With a signer the RPMs, update.xml and repomd.xml are signed and the public key is
    shipped in the ISO as /RPM-GPG-KEY-xscontainer-ng (named by update.xml's key=).
    """
    key_name = N.KEY_FILE if signer else None
    size = int(rpm.query(dom0_rpm_path, "%{SIZE}")) + 4096  # + the update record itself
    doc = update_xml(version, size, key_name)
    update_rpm = build_update_rpm(version, doc, out_dir, workdir)
    if signer:
        signer.sign_rpms([dom0_rpm_path, update_rpm])

    iso_dir = os.path.join(workdir, "iso")
    packages = os.path.join(iso_dir, "Packages")
    os.makedirs(packages)
    for path in (dom0_rpm_path, update_rpm):
        shutil.copy2(path, packages)
    with open(os.path.join(iso_dir, "update.xml"), "w") as f:
        f.write(doc)
    groupfile = os.path.join(workdir, "comps.xml")
    with open(groupfile, "w") as f:
        f.write(comps_xml())
    make_repo(iso_dir, groupfile)
    if signer:
        signer.detach_sign(os.path.join(iso_dir, "update.xml"))
        signer.detach_sign(os.path.join(iso_dir, "repodata", "repomd.xml"))
        signer.export_public(os.path.join(iso_dir, N.KEY_FILE))
    S.normalize_modes(iso_dir)
    iso = make_iso(iso_dir, os.path.join(out_dir, N.iso_name(version)))
    return update_rpm, iso
