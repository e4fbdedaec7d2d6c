#!/bin/sh
# Installs everything the tests, the lab and the pack builder need on a Debian 12 / Ubuntu
# machine (run as root): Debian packages, then a virtualenv with the project and its extras.
set -eu
cd "$(dirname "$0")/.."
PKGS="docker.io openssh-server openssh-client busybox-static xenstore-utils iproute2 util-linux
      passwd mount procps rpm createrepo-c genisoimage gnupg dpkg-dev python3-venv make tar"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# Debian starts no Docker Engine here (no systemd); the lab runs its own engines.
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,lab,agent,dom0]'
