"""The cloud-init snippet that installs the guest agent package and enables its service.

Meant for the user-data of a template (or of each VM): it fetches the .deb or .rpm from a
place the admin sets (an http(s) URL or a directory, e.g. a mounted config drive), installs
it with the distribution's package manager (which pulls python3) and enables the service.
"""
from pack import names as N

TEMPLATE = """\
#cloud-config
# xscontainer-ng guest agent %(version)s: install the package and enable the service.
#
# Set AGENT_SOURCE (the argument in runcmd below) to where you publish
#   %(deb)s  and  %(rpm)s
# either an http(s):// URL of that directory or a local directory (a config drive...).
# The VM needs a Docker Engine; the agent waits for it. To enable dom0's lifecycle requests,
# add a write_files entry for %(conf)s (see the comments in that file).
write_files:
  - path: /run/xscontainer-agent-install.sh
    permissions: "0700"
    content: |
      #!/bin/sh
      set -eu
      src="${1%%/}"
      tmp=$(mktemp -d)
      trap 'rm -rf "$tmp"' EXIT
      fetch() {
        case "$src" in
          http://*|https://*)
            if command -v curl >/dev/null 2>&1; then curl -fsSL -o "$tmp/$1" "$src/$1"
            elif command -v wget >/dev/null 2>&1; then wget -q -O "$tmp/$1" "$src/$1"
            else python3 -c 'import sys, urllib.request as u; u.urlretrieve(*sys.argv[1:])' \\
                   "$src/$1" "$tmp/$1"
            fi ;;
          *) cp "$src/$1" "$tmp/$1" ;;
        esac
        echo "$tmp/$1"
      }
      if command -v apt-get >/dev/null 2>&1; then
        pkg=$(fetch %(deb)s)
        apt-get update -q || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg"
      elif command -v dnf >/dev/null 2>&1; then
        dnf install -y "$(fetch %(rpm)s)"
      elif command -v yum >/dev/null 2>&1; then
        yum install -y "$(fetch %(rpm)s)"
      elif command -v zypper >/dev/null 2>&1; then
        zypper --non-interactive install --allow-unsigned-rpm "$(fetch %(rpm)s)"
      else
        echo "xscontainer-agent: no apt-get, dnf, yum or zypper here" >&2
        exit 1
      fi
      systemctl enable --now %(unit)s
runcmd:
  - [sh, /run/xscontainer-agent-install.sh, "https://CHANGE-ME.example/xscontainer-ng/%(version)s"]
"""


def snippet(version):
    """The cloud-config text for this version's package file names."""
    return TEMPLATE % {"version": version, "deb": N.agent_deb_name(version),
                       "rpm": N.agent_rpm_name(version), "conf": N.AGENT_CONF,
                       "unit": N.AGENT_UNIT}


def write(path, version):
    with open(path, "w") as f:
        f.write(snippet(version))
    return path
