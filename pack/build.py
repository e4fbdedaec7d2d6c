"""Build every output into one directory: ``python -m pack --out DIR [--sign-key KEYID]
[--version V]`` (the Makefile's ``make pack`` writes build/pack).

Outputs: the dom0 RPM, update-xscontainer-ng RPM and supplemental-pack ISO; the guest agent
.deb and .rpm; the cloud-init snippet; SHA256SUMS (+ .asc and the public key when signed).
"""
import argparse
import hashlib
import os
import sys
import tempfile

from pack import cloud_init, dom0_rpm, guest_packages, names as N, suppack
from pack.signing import Signer
from pack.tools import BuildError


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_sums(out_dir, paths):
    sums = os.path.join(out_dir, "SHA256SUMS")
    with open(sums, "w") as f:
        for p in sorted(paths):
            f.write("%s  %s\n" % (_sha256(p), os.path.basename(p)))
    return sums


def build_all(out_dir, version=None, sign_key=None, warn=None):
    """Build everything into out_dir; return the list of files written."""
    warn = warn or (lambda msg: sys.stderr.write("warning: %s\n" % msg))
    version = N.check_version(version or N.default_version())
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    signer = Signer(sign_key) if sign_key else None
    # a previous build's signatures and sums would not match this build
    for stale in ("SHA256SUMS", "SHA256SUMS.asc", N.KEY_FILE):
        if os.path.exists(os.path.join(out_dir, stale)):
            os.unlink(os.path.join(out_dir, stale))
    with tempfile.TemporaryDirectory(prefix="xscng-pack-") as work:
        dom0 = dom0_rpm.build(out_dir, version, work, warn)
        update_rpm, iso = suppack.build(out_dir, version, dom0, work, signer)
        agent_deb, agent_rpm = guest_packages.build(out_dir, version, work, warn)
    if signer:
        signer.sign_rpms([agent_rpm])
    snippet = cloud_init.write(os.path.join(out_dir, N.CLOUD_INIT_FILE), version)
    outputs = [dom0, update_rpm, iso, agent_deb, agent_rpm, snippet]
    if signer:
        outputs.append(signer.export_public(os.path.join(out_dir, N.KEY_FILE)))
    else:
        warn("unsigned build: xapi (xe-install-supplemental-pack / xe update-upload) refuses "
             "an unsigned ISO; use --sign-key for that route (plain RPMs install either way)")
    sums = write_sums(out_dir, outputs)
    outputs.append(sums)
    if signer:
        outputs.append(signer.detach_sign(sums))
    return outputs


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m pack", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--sign-key", metavar="KEYID",
                        help="GnuPG key (RSA) to sign the RPMs, update.xml and repomd.xml with")
    parser.add_argument("--version", help="package version (default: setup.py's)")
    args = parser.parse_args(argv)
    try:
        outputs = build_all(args.out, args.version, args.sign_key)
    except (BuildError, ValueError) as e:
        sys.stderr.write("pack: %s\n" % e)
        return 1
    for path in outputs:
        print(path)
    return 0
