"""Build an architecture-independent .deb from a staging tree with dpkg-deb (no debhelper)."""
import os
from dataclasses import dataclass, field
from typing import Dict, List

from pack import stage as stagelib
from pack.tools import BuildError, require, run


@dataclass
class DebPackage:
    """The control fields and maintainer scripts of one binary package."""
    name: str
    version: str                 # full Debian version (upstream-revision)
    maintainer: str
    summary: str
    description: str
    depends: List[str] = field(default_factory=list)
    suggests: List[str] = field(default_factory=list)
    section: str = "admin"
    conffiles: List[str] = field(default_factory=list)
    scripts: Dict[str, str] = field(default_factory=dict)   # "postinst" -> sh body


def control_text(pkg, installed_kib):
    """DEBIAN/control (Installed-Size is what dpkg-gencontrol would compute)."""
    lines = ["Package: " + pkg.name, "Version: " + pkg.version, "Architecture: all",
             "Maintainer: " + pkg.maintainer, "Installed-Size: %d" % installed_kib,
             "Section: " + pkg.section, "Priority: optional"]
    if pkg.depends:
        lines.append("Depends: " + ", ".join(pkg.depends))
    if pkg.suggests:
        lines.append("Suggests: " + ", ".join(pkg.suggests))
    body = [" " + (l if l.strip() else ".") for l in pkg.description.strip().splitlines()]
    lines.append("Description: " + pkg.summary)
    return "\n".join(lines + body) + "\n"


def build(pkg, stage, out_path):
    """dpkg-deb --build the staging tree (plus a DEBIAN dir made here); return out_path."""
    require("dpkg-deb")
    stagelib.normalize_modes(stage)
    staged = set(stagelib.files_under(stage))
    missing = [c for c in pkg.conffiles if c not in staged]
    if missing:
        raise BuildError("conffiles not staged: %s" % ", ".join(missing))
    kib = (stagelib.size_of(stage) + 1023) // 1024
    debian = os.path.join(stage, "DEBIAN")
    os.makedirs(debian)
    with open(os.path.join(debian, "control"), "w") as f:
        f.write(control_text(pkg, kib))
    if pkg.conffiles:
        with open(os.path.join(debian, "conffiles"), "w") as f:
            f.write("".join(c + "\n" for c in pkg.conffiles))
    for name, body in pkg.scripts.items():
        path = os.path.join(debian, name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\nset -e\n" + body.strip() + "\n\nexit 0\n")
        os.chmod(path, 0o755)
    for name in ("control", "conffiles"):
        if os.path.exists(os.path.join(debian, name)):
            os.chmod(os.path.join(debian, name), 0o644)
    os.chmod(debian, 0o755)
    run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", stage, out_path])
    return out_path
