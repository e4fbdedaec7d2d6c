"""The dom0 RPM (xscontainer-ng, noarch) for XenServer 8 / XCP-ng 8.3.

Installed layout (the lab's --dom0-root and the product code rely on it):
  /etc/xapi.d/plugins/<every executable in dom0_plugin/plugins/>        0755
  /usr/lib/xscontainer-ng/dom0_plugin/...    the library, its bin/ and plugins/ (+ 3.6 .pyc)
  /usr/lib/xscontainer-ng/xsc_contract/...      what dom0 and the guest agent both speak
  /usr/lib/xscontainer-ng/vendor/...         unpacked cp36 wheels of dom0-requirements.txt
  /usr/bin/xscontainer                       the CLI
  /usr/lib/systemd/system/xscontainer-monitor.service, its preset, logrotate, bugtool entry,
  /etc/xensource/installed-repos/xscontainer-ng/XS-REPOSITORY
"""
import os
import sys
from xml.sax.saxutils import quoteattr, escape

from pack import bytecompile, names as N, rpm, stage as S, wheels

DATA = os.path.join(N.PACK_DIR, "dom0")

DESCRIPTION = """\
xscontainer-ng shows and controls the Docker containers that run inside VMs from xe,
Xen Orchestra and XenCenter: the xapi plugin `xscontainer`, the xscontainer CLI and the
xscontainer-monitor service. Successor of the Container Management supplemental pack.
Third-party Python code it needs (paramiko, cryptography, click...) is private to it,
in /usr/lib/xscontainer-ng/vendor.
"""

# EL7's %systemd_post / %systemd_preun / %systemd_postun_with_restart, written out (Debian's
# rpm has no such macros), plus a start on first install. Registrations and keys live in
# XAPI: an upgrade has nothing to migrate.
POST = """\
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ $1 -eq 1 ]; then
    # first install: enable as the presets say, then start if enabled
    systemctl preset {unit} >/dev/null 2>&1 || :
    if [ -d /run/systemd/system ] && systemctl is-enabled --quiet {unit} 2>/dev/null; then
        systemctl start {unit} >/dev/null 2>&1 || :
    fi
fi
"""
PREUN = """\
if [ $1 -eq 0 ]; then
    # erase, not upgrade
    systemctl --no-reload disable {unit} >/dev/null 2>&1 || :
    systemctl stop {unit} >/dev/null 2>&1 || :
fi
"""
POSTUN = """\
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ $1 -ge 1 ]; then
    # upgrade: the old monitor process picks up the new code
    systemctl try-restart {unit} >/dev/null 2>&1 || :
else
    # erase: drop bytecode a Python run may have left behind in the private tree
    rm -rf {libdir}
fi
"""


def xs_repository(version):
    """XS-REPOSITORY: xapi turns it into host.software_version['<originator>:<name>']."""
    return ("<repository originator=%s name=%s product=\"XenServer\" version=%s build=%s>"
            "<description>%s</description></repository>\n"
            % (quoteattr(N.REPO_ORIGINATOR), quoteattr(N.REPO_NAME), quoteattr(version),
               quoteattr(N.RELEASE), escape("xscontainer-ng: " + N.SUMMARY)))


def stage_tree(stage, version, warn):
    """Lay out every installed file of the dom0 RPM under `stage`."""
    lib = N.LIBDIR
    S.copy_tree(N.DOM0_SRC, stage, lib + "/dom0_plugin")
    plugins = os.path.join(N.DOM0_SRC, "plugins")
    for name in sorted(os.listdir(plugins)):
        src = os.path.join(plugins, name)
        if os.path.isfile(src) and os.access(src, os.X_OK):
            S.put_file(stage, N.PLUGIN_DIR + "/" + name, src=src, mode=0o755)
    S.put_file(stage, N.CLI_PATH, src=os.path.join(N.DOM0_SRC, "bin", "xscontainer"), mode=0o755)
    if not os.path.exists(os.path.join(N.DOM0_SRC, "bin", "xscontainer-monitor")):
        warn("dom0_plugin/bin/xscontainer-monitor does not exist yet: the unit is shipped but "
             "stays inactive (ConditionPathExists)")

    S.copy_tree(N.CONTRACT_SRC, stage, lib + "/" + N.CONTRACT_PACKAGE)

    wheels.unpack(wheels.dom0_wheels(N.DOM0_REQUIREMENTS, N.WHEEL_CACHE_CP36),
                  S.path_in(stage, lib + "/vendor"))

    S.put_file(stage, N.UNIT_DIR + "/" + N.MONITOR_UNIT,
               src=os.path.join(DATA, N.MONITOR_UNIT))
    S.put_file(stage, N.PRESET_DIR + "/90-xscontainer-ng.preset",
               src=os.path.join(DATA, "90-xscontainer-ng.preset"))
    S.put_file(stage, N.LOGROTATE_PATH, src=os.path.join(DATA, "logrotate"))
    cap = N.BUGTOOL_CAPABILITY
    S.put_file(stage, "%s/%s.xml" % (N.BUGTOOL_DIR, cap),
               src=os.path.join(DATA, "bugtool", "xscontainer-ng.xml"))
    S.put_file(stage, "%s/%s/stuff.xml" % (N.BUGTOOL_DIR, cap),
               src=os.path.join(DATA, "bugtool", "stuff.xml"))
    S.put_file(stage, N.INSTALLED_REPO_DIR + "/XS-REPOSITORY", text=xs_repository(version))

    python36 = bytecompile.find_python36()
    if python36:
        bytecompile.compile_tree(python36, S.path_in(stage, lib), lib)
    else:
        warn("no Python 3.6 found: the dom0 tree is not byte-compiled")


def package(version):
    """The spec-level description of the dom0 RPM."""
    fmt = dict(unit=N.MONITOR_UNIT, libdir=N.LIBDIR)
    return rpm.RpmPackage(
        name=N.DOM0_PACKAGE, version=version, release=N.RELEASE, summary=N.SUMMARY,
        description=DESCRIPTION, license=N.LICENSE,
        requires=["python3", "logrotate",
                  "Requires(post): systemd", "Requires(preun): systemd",
                  "Requires(postun): systemd"],
        obsoletes=[N.LEGACY_PACKAGE],
        trees=[N.LIBDIR],
        dirs=["%s/%s" % (N.BUGTOOL_DIR, N.BUGTOOL_CAPABILITY), N.INSTALLED_REPO_DIR],
        config=[N.LOGROTATE_PATH],
        scripts={"post": POST.format(**fmt), "preun": PREUN.format(**fmt),
                 "postun": POSTUN.format(**fmt)})


def build(out_dir, version, workdir, warn=None):
    """Stage and build the dom0 RPM into out_dir; return its path."""
    warn = warn or (lambda msg: sys.stderr.write("warning: %s\n" % msg))
    stage = os.path.join(workdir, "dom0-root")
    stage_tree(stage, version, warn)
    return rpm.build(package(version), stage, out_dir)
