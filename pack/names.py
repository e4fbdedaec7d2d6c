"""Names, versions and installed paths shared by the package builders (defined once here).

The installed layout is a contract: the lab (``--dom0-root``) and the product code rely on it.
"""
import os
import re
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACK_DIR = os.path.join(REPO, "pack")

# --- dom0 -------------------------------------------------------------------------------
DOM0_PACKAGE = "xscontainer-ng"            # the payload RPM
UPDATE_LABEL = DOM0_PACKAGE                # update.xml name-label = the yum repo id in dom0
UPDATE_PACKAGE = "update-" + UPDATE_LABEL  # what comps group `update` requires
RELEASE = "1"
LIBDIR = "/usr/lib/xscontainer-ng"         # dom0_plugin/, xsc_contract/, vendor/
PLUGIN_DIR = "/etc/xapi.d/plugins"
CLI_PATH = "/usr/bin/xscontainer"
MONITOR_UNIT = "xscontainer-monitor.service"
UNIT_DIR = "/usr/lib/systemd/system"
PRESET_DIR = "/usr/lib/systemd/system-preset"
LOGROTATE_PATH = "/etc/logrotate.d/xscontainer-ng"
BUGTOOL_CAPABILITY = "xscontainer-ng"
BUGTOOL_DIR = "/etc/xensource/bugtool"
INSTALLED_REPO_DIR = "/etc/xensource/installed-repos/xscontainer-ng"
# host.software_version key = "<originator>:<name>" (xapi reads XS-REPOSITORY at resync/start)
REPO_ORIGINATOR = "xscontainer-ng"
REPO_NAME = "xscontainer"
APPLIED_DIR = "/var/update/applied"       # xapi's resync_host lists the updates found here
LOG_FILES = ("/var/log/xscontainer-plugin.log", "/var/log/xscontainer-monitor.log")
# update.xml key= names it; xapi points yum at /etc/pki/rpm-gpg/<key>
KEY_FILE = "RPM-GPG-KEY-xscontainer-ng"
# the legacy Citrix pack shipped the same plugin file: replace it rather than clash
LEGACY_PACKAGE = "xscontainer"
DOM0_REQUIREMENTS = os.path.join(PACK_DIR, "dom0-requirements.txt")

# --- guest ------------------------------------------------------------------------------
AGENT_PACKAGE = "xscontainer-agent"
AGENT_LIBDIR = "/usr/lib/xscontainer-agent"
AGENT_BIN = "/usr/bin/xscontainer-agent"
AGENT_UNIT = "xscontainer-agent.service"
AGENT_CONF = "/etc/xscontainer-agent/agent.conf"
AGENT_MIN_PYTHON = "3.8"
GUEST_REQUIREMENTS = os.path.join(PACK_DIR, "guest-requirements.txt")
CLOUD_INIT_FILE = "xscontainer-agent.cloud-init.yaml"

# --- sources and caches -----------------------------------------------------------------
DOM0_SRC = os.path.join(REPO, "dom0_plugin")
GUEST_SRC = os.path.join(REPO, "guest_agent")
# what both dom0 and the guest agent speak (Python 3.6, stdlib only): shipped to both
CONTRACT_PACKAGE = "xsc_contract"
CONTRACT_SRC = os.path.join(REPO, CONTRACT_PACKAGE)
# the trees that run in dom0 (checked for Python 3.6 by vermin, byte-compiled for 3.6)
DOM0_TREES = (DOM0_SRC, CONTRACT_SRC)
WHEEL_CACHE_CP36 = os.path.join(REPO, "build", "wheels-cp36")   # shared with the lab
WHEEL_CACHE_GUEST = os.path.join(REPO, "build", "wheels-guest")

# placeholders until the project publishes a contact and a licence (the lead decides)
MAINTAINER = "xscontainer-ng project <packaging@xscontainer-ng.invalid>"
SUMMARY = "Docker container management for XenServer 8 / XCP-ng 8.3 VMs"
LICENSE = "Unspecified"

# fixed namespace: the update uuid is stable for a version and differs between versions
_UPDATE_NS = uuid.UUID("6f0c1d52-3a1e-4c55-9d0e-2b7f4f2f6a10")
_VERSION_RE = re.compile(r"^[0-9][0-9A-Za-z.+~]*$")


def default_version():
    """The project version, read from setup.py (the one place it is written)."""
    with open(os.path.join(REPO, "setup.py")) as f:
        m = re.search(r'version\s*=\s*"([^"]+)"', f.read())
    if not m:
        raise RuntimeError("no version= in setup.py")
    return m.group(1)


def check_version(version):
    """Refuse versions rpm or dpkg would reject (no '-', starts with a digit)."""
    if not _VERSION_RE.match(version):
        raise ValueError("invalid version %r: digits, letters, '.', '+', '~' only, "
                         "starting with a digit" % version)
    return version


def update_uuid(version):
    """The update.xml uuid of this version (stable across rebuilds)."""
    return str(uuid.uuid5(_UPDATE_NS, "%s/%s" % (UPDATE_LABEL, version)))


def dom0_rpm_name(version):
    return "%s-%s-%s.noarch.rpm" % (DOM0_PACKAGE, version, RELEASE)


def update_rpm_name(version):
    return "%s-%s-%s.noarch.rpm" % (UPDATE_PACKAGE, version, RELEASE)


def iso_name(version):
    return "%s-%s.iso" % (DOM0_PACKAGE, version)


def agent_deb_name(version):
    return "%s_%s-%s_all.deb" % (AGENT_PACKAGE, version, RELEASE)


def agent_rpm_name(version):
    return "%s-%s-%s.noarch.rpm" % (AGENT_PACKAGE, version, RELEASE)
