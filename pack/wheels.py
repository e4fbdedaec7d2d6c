"""Third-party wheels the packages vendor: fetched once into a cache, checked, unpacked.

dom0 (XS 8 / XCP-ng 8.3: CPython 3.6, glibc 2.17, x86_64) gets cp36 / abi3 manylinux wheels;
guests get pure-Python wheels only, so no compiler and no matching ABI is needed there.
"""
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections import namedtuple

from pack.tools import BuildError

CP36_PIP = ["--python-version", "3.6", "--implementation", "cp", "--abi", "cp36m",
            "--platform", "manylinux2014_x86_64", "--only-binary=:all:"]
PURE_PIP = ["--python-version", "3.8", "--implementation", "py", "--abi", "none",
            "--platform", "any", "--only-binary=:all:"]
DOM0_GLIBC = (2, 17)

Wheel = namedtuple("Wheel", "path name version python abi platforms")

_WHEEL_RE = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-(?P<python>[^-]+)"
                       r"-(?P<abi>[^-]+)-(?P<platform>[^-]+)\.whl$")
_MANYLINUX_RE = re.compile(r"^manylinux(?:(?P<legacy>1|2010|2014)|_(?P<major>\d+)_(?P<minor>\d+))"
                           r"_x86_64$")
_LEGACY_GLIBC = {"1": (2, 5), "2010": (2, 12), "2014": (2, 17)}


def normalize(name):
    """PEP 503 name normalisation (PyNaCl == pynacl, charset-normalizer == charset_normalizer)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path):
    """The `name==version` lines of a requirements file, as {normalized name: version}."""
    pins = {}
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            if "==" not in line:
                raise BuildError("%s: %r is not pinned with ==" % (path, line))
            name, version = (part.strip() for part in line.split("==", 1))
            pins[normalize(name)] = version
    return pins


def parse(path):
    """The tags of a wheel file name (PEP 427)."""
    m = _WHEEL_RE.match(os.path.basename(path))
    if not m:
        raise BuildError("not a wheel file name: %s" % path)
    return Wheel(path, normalize(m.group("name")), m.group("version"), m.group("python"),
                 m.group("abi"), tuple(m.group("platform").split(".")))


def is_pure(wheel):
    return (wheel.abi == "none" and wheel.platforms == ("any",)
            and "py3" in wheel.python.split("."))


def _glibc(platform):
    m = _MANYLINUX_RE.match(platform)
    if not m:
        return None
    if m.group("legacy"):
        return _LEGACY_GLIBC[m.group("legacy")]
    return (int(m.group("major")), int(m.group("minor")))


def fits_dom0(wheel):
    """True when CPython 3.6 on glibc 2.17 x86_64 can load this wheel."""
    if is_pure(wheel):
        return True
    if wheel.python != "cp36" and not (wheel.abi == "abi3" and _abi3_floor_ok(wheel.python)):
        return False
    if wheel.abi not in ("cp36m", "abi3"):
        return False
    # a compressed tag set (a.b.c) means "runs on any of these": the oldest glibc counts
    glibcs = [g for g in (_glibc(p) for p in wheel.platforms) if g]
    return bool(glibcs) and min(glibcs) <= DOM0_GLIBC


def _abi3_floor_ok(python):
    m = re.match(r"^cp3(\d+)$", python)
    return bool(m) and int(m.group(1)) <= 6


def _cached(cache, pins, accept):
    """{name: wheel} of the cache's wheels that match a pin and that `accept` takes."""
    found = {}
    if os.path.isdir(cache):
        for fname in sorted(os.listdir(cache)):
            if fname.endswith(".whl"):
                w = parse(os.path.join(cache, fname))
                if pins.get(w.name) == w.version and accept(w):
                    found[w.name] = w
    return found


def fetch(requirements, cache, pip_tags, accept, what):
    """Return the checked wheels pinned in `requirements`, downloading the missing ones.

    The cache is shared (the lab reads build/wheels-cp36 too): only pinned versions that
    `accept` takes are picked from it; when none fits a pin the build stops.
    """
    pins = read_pins(requirements)
    have = _cached(cache, pins, accept)
    if set(have) != set(pins):
        os.makedirs(cache, exist_ok=True)
        argv = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", cache]
        argv += pip_tags + ["-r", requirements]
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True)
        if proc.returncode != 0:
            raise BuildError("pip download of the %s wheels failed:\n%s" % (what, proc.stderr))
        have = _cached(cache, pins, accept)
    missing = sorted(set(pins) - set(have))
    if missing:
        unfit = sorted(f for f in os.listdir(cache) if f.endswith(".whl")
                       and parse(f).name in missing)
        raise BuildError("no wheel fit for %s for: %s (in the cache: %s)"
                         % (what, ", ".join(missing), ", ".join(unfit) or "none"))
    return [have[name] for name in sorted(have)]


def dom0_wheels(requirements, cache):
    """paramiko's stack and click as cp36 / abi3 manylinux2014 wheels."""
    return fetch(requirements, cache, CP36_PIP, fits_dom0, "dom0 (CPython 3.6)")


def guest_wheels(requirements, cache):
    """The Docker SDK and its dependencies as pure-Python wheels."""
    return fetch(requirements, cache, PURE_PIP, is_pure, "the guest (pure Python)")


def unpack(wheels, target):
    """Unpack wheels into one import directory (what pip would install, minus scripts)."""
    os.makedirs(target, exist_ok=True)
    for w in wheels:
        with zipfile.ZipFile(w.path) as z:
            for member in z.namelist():
                parts = member.split("/")
                if member.startswith("/") or ".." in parts:
                    raise BuildError("%s: unsafe path %r" % (w.path, member))
                # <name>.data/ holds scripts and headers a library import never needs
                if parts[0].endswith(".data"):
                    continue
                z.extract(member, target)
    for root, dirs, _files in os.walk(target):
        if "__pycache__" in dirs:
            shutil.rmtree(os.path.join(root, "__pycache__"))
            dirs.remove("__pycache__")
