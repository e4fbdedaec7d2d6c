"""The guest agent packages: xscontainer-agent as a .deb and a noarch .rpm (same files).

Installed layout:
  /usr/lib/xscontainer-agent/guest_agent/...   the whole guest_agent package (as it exists)
  /usr/lib/xscontainer-agent/xsc_contract/...  what the agent and dom0 both speak
  /usr/lib/xscontainer-agent/vendor/...        the Docker SDK and its pure-Python dependencies
  /usr/bin/xscontainer-agent                   launcher: private paths first, then
                                               guest_agent.agent.main()
  /usr/lib/systemd/system/xscontainer-agent.service
  /etc/xscontainer-agent/agent.conf            request channel off (a conffile)

Both packages byte-compile the tree with the guest's python3 after install, remove that
bytecode on removal, and enable + start the service on first install (a template built with
the package comes up with the agent running).
"""
import os
import sys

from pack import deb, names as N, rpm, stage as S, wheels

DATA = os.path.join(N.PACK_DIR, "guest")

SUMMARY = "xscontainer-ng guest agent: reports Docker containers to dom0 via xenstore"
DESCRIPTION = """\
Runs inside XenServer / XCP-ng VMs next to the Docker Engine. It keeps a compact report
of the containers in the VM's xenstore tree, which the xscontainer-ng pack in dom0 turns
into what Xen Orchestra and XenCenter show: no SSH, no network path from dom0 needed.
Lifecycle requests from dom0 are off unless enabled in /etc/xscontainer-agent/agent.conf.
The Docker SDK it uses is bundled in /usr/lib/xscontainer-agent/vendor.
"""

_COMPILE = ("python3 -m compileall -q %(lib)s/guest_agent %(lib)s/xsc_contract %(lib)s/vendor "
            ">/dev/null 2>&1 || true")
_CLEAN = "find %(lib)s -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true"

DEB_POSTINST = """\
if [ "$1" = configure ]; then
    %(compile)s
    if [ -z "$2" ]; then
        # first install
        systemctl enable %(unit)s >/dev/null 2>&1 || true
    fi
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null 2>&1 || true
        if [ -z "$2" ]; then
            systemctl start %(unit)s >/dev/null 2>&1 || true
        else
            systemctl try-restart %(unit)s >/dev/null 2>&1 || true
        fi
    fi
fi
"""
DEB_PRERM = """\
if [ "$1" = remove ]; then
    if [ -d /run/systemd/system ]; then
        systemctl stop %(unit)s >/dev/null 2>&1 || true
    fi
    systemctl disable %(unit)s >/dev/null 2>&1 || true
fi
if [ "$1" = remove ] || [ "$1" = upgrade ]; then
    %(clean)s
fi
"""
DEB_POSTRM = """\
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
"""
RPM_POST = """\
%(compile)s
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ $1 -eq 1 ]; then
    systemctl enable %(unit)s >/dev/null 2>&1 || :
    if [ -d /run/systemd/system ]; then
        systemctl start %(unit)s >/dev/null 2>&1 || :
    fi
fi
"""
RPM_PREUN = """\
if [ $1 -eq 0 ]; then
    # erase (on upgrade the new package's %%post has just compiled: keep that)
    systemctl --no-reload disable %(unit)s >/dev/null 2>&1 || :
    systemctl stop %(unit)s >/dev/null 2>&1 || :
    %(clean)s
fi
"""
RPM_POSTUN = """\
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ $1 -ge 1 ]; then
    systemctl try-restart %(unit)s >/dev/null 2>&1 || :
fi
"""


def _script_vars():
    v = {"lib": N.AGENT_LIBDIR, "unit": N.AGENT_UNIT}
    v["compile"] = _COMPILE % v
    v["clean"] = _CLEAN % v
    return v


def stage_tree(stage, warn):
    """Lay out every installed file of the agent packages under `stage`."""
    lib = N.AGENT_LIBDIR
    copied = 0
    if os.path.isdir(N.GUEST_SRC):
        copied = S.copy_tree(N.GUEST_SRC, stage, lib + "/guest_agent")
        S.copy_tree(N.CONTRACT_SRC, stage, lib + "/" + N.CONTRACT_PACKAGE)
    if not copied:
        warn("guest_agent/ is empty or missing: the agent packages hold no agent code yet")
    elif not os.path.exists(os.path.join(N.GUEST_SRC, "agent.py")):
        warn("guest_agent/agent.py does not exist yet: /usr/bin/xscontainer-agent cannot start")
    wheels.unpack(wheels.guest_wheels(N.GUEST_REQUIREMENTS, N.WHEEL_CACHE_GUEST),
                  S.path_in(stage, lib + "/vendor"))
    S.put_file(stage, N.AGENT_BIN, src=os.path.join(DATA, "xscontainer-agent"), mode=0o755)
    S.put_file(stage, N.UNIT_DIR + "/" + N.AGENT_UNIT, src=os.path.join(DATA, N.AGENT_UNIT))
    S.put_file(stage, N.AGENT_CONF, src=os.path.join(DATA, "agent.conf"))


def deb_package(version):
    v = _script_vars()
    return deb.DebPackage(
        name=N.AGENT_PACKAGE, version="%s-%s" % (version, N.RELEASE), maintainer=N.MAINTAINER,
        summary=SUMMARY, description=DESCRIPTION,
        depends=["python3 (>= %s)" % N.AGENT_MIN_PYTHON],
        # not Recommends: apt would then pull a second engine next to a snap or static one
        suggests=["docker.io | docker-ce"],
        conffiles=[N.AGENT_CONF],
        scripts={"postinst": DEB_POSTINST % v, "prerm": DEB_PRERM % v,
                 "postrm": DEB_POSTRM % v})


def rpm_package(version):
    v = _script_vars()
    return rpm.RpmPackage(
        name=N.AGENT_PACKAGE, version=version, release=N.RELEASE, summary=SUMMARY,
        description=DESCRIPTION, license=N.LICENSE,
        requires=["python3 >= %s" % N.AGENT_MIN_PYTHON, "Requires(post): systemd",
                  "Requires(preun): systemd", "Requires(postun): systemd"],
        trees=[N.AGENT_LIBDIR], dirs=[os.path.dirname(N.AGENT_CONF)], config=[N.AGENT_CONF],
        scripts={"post": RPM_POST % v, "preun": RPM_PREUN % v, "postun": RPM_POSTUN % v})


def build(out_dir, version, workdir, warn=None):
    """Build the .deb and the .rpm into out_dir; return (deb_path, rpm_path)."""
    warn = warn or (lambda msg: sys.stderr.write("warning: %s\n" % msg))
    rpm_stage = os.path.join(workdir, "agent-rpm-root")
    stage_tree(rpm_stage, warn)
    rpm_path = rpm.build(rpm_package(version), rpm_stage, out_dir)
    deb_stage = os.path.join(workdir, "agent-deb-root")
    stage_tree(deb_stage, lambda msg: None)   # same tree: warned once already
    deb_path = deb.build(deb_package(version), deb_stage,
                         os.path.join(out_dir, N.agent_deb_name(version)))
    return deb_path, rpm_path
