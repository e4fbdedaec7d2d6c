#!/bin/sh
# Installs everything the tests, the lab and the pack builder need on a Debian 12 / Ubuntu
# machine (run as root): Debian packages, then a virtualenv with the project and its extras.
set -eu
cd "$(dirname "$0")/.."
PKGS="docker.io openssh-server openssh-client busybox-static xenstore-utils iproute2 util-linux
      passwd mount procps binutils debootstrap rpm createrepo-c genisoimage gnupg dpkg-dev python3-venv make tar"
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
[ tests/consumers/node_modules/.package-lock.json -nt tests/consumers/package-lock.json ] || npm ci --prefix tests/consumers --no-audit --no-fund --loglevel=error  # XO's XML parser (tests/consumers)

# The newest Debian's Docker Engine (docker.io from unstable, with its own containerd and
# runc), debootstrapped once into build/engines/sid: the engine-backed tests run against it
# and the machine's 20.10.
.venv/bin/python -m lab.debian_engine prepare sid >/dev/null

# dom0's Python 3.6 (the plugin, the monitor and the lab's dom0 run on it): $XSCNG_DOM0_PYTHON,
# else a python3.6 on PATH that runs, else one of pyenv's; linked as .venv/bin/python3.6,
# where lab/dom0_python.py looks. CI must have it; elsewhere the dom0 checks are skipped.
runs36() { [ -n "$1" ] && [ "$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = 3.6 ]; }
py36=""
if [ -n "${XSCNG_DOM0_PYTHON:-}" ]; then
  runs36 "$XSCNG_DOM0_PYTHON" && py36=$XSCNG_DOM0_PYTHON
else
  for c in "$(command -v python3.6 || true)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.6*/bin/python3.6; do
    if runs36 "$c"; then py36=$c; break; fi
  done
fi
if [ -n "$py36" ]; then
  ln -sfn "$py36" .venv/bin/python3.6
else
  rm -f .venv/bin/python3.6
  echo "setup: no Python 3.6 for dom0 found: put a python3.6 on PATH (pyenv install 3.6.15)" \
       "or name one in XSCNG_DOM0_PYTHON" >&2
  if [ "${CI:-}" = true ]; then exit 1; fi
fi
