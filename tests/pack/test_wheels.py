"""Which wheels fit dom0 (CPython 3.6, glibc 2.17, x86_64) and which fit guests (pure)."""
import pytest

from pack import names as N, wheels
from pack.tools import BuildError


@pytest.mark.parametrize("name, dom0, pure", [
    ("cryptography-40.0.2-cp36-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", True, False),
    ("bcrypt-4.0.1-cp36-abi3-manylinux_2_24_x86_64.whl", False, False),
    ("PyNaCl-1.5.0-cp36-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64"
     ".manylinux_2_24_x86_64.whl", True, False),
    ("cffi-1.15.1-cp36-cp36m-manylinux_2_5_x86_64.manylinux1_x86_64.whl", True, False),
    ("cffi-1.15.1-cp37-cp37m-manylinux_2_17_x86_64.whl", False, False),
    ("cryptography-44.0.0-cp39-abi3-manylinux_2_28_x86_64.whl", False, False),
    ("bcrypt-4.0.1-cp36-abi3-manylinux_2_17_aarch64.whl", False, False),
    ("bcrypt-4.0.1-cp36-abi3-musllinux_1_1_x86_64.whl", False, False),
    ("paramiko-3.5.1-py3-none-any.whl", True, True),
    ("six-1.16.0-py2.py3-none-any.whl", True, True),
    ("charset_normalizer-3.4.0-cp38-cp38-manylinux_2_17_x86_64.whl", False, False),
])
def test_fit(name, dom0, pure):
    w = wheels.parse("/cache/" + name)
    assert wheels.fits_dom0(w) is dom0
    assert wheels.is_pure(w) is pure


def test_parse_normalizes_names():
    w = wheels.parse("PyNaCl-1.5.0-cp36-abi3-manylinux2014_x86_64.whl")
    assert (w.name, w.version, w.python, w.abi) == ("pynacl", "1.5.0", "cp36", "abi3")
    with pytest.raises(BuildError):
        wheels.parse("not-a-wheel.tar.gz")


def test_requirements_are_pinned():
    for path in (N.DOM0_REQUIREMENTS, N.GUEST_REQUIREMENTS):
        pins = wheels.read_pins(path)
        assert pins and all(v[0].isdigit() for v in pins.values())
    assert "paramiko" in wheels.read_pins(N.DOM0_REQUIREMENTS)
    assert "docker" in wheels.read_pins(N.GUEST_REQUIREMENTS)


def test_version_checks():
    assert N.check_version("0.1.0") == "0.1.0"
    assert N.check_version("1.2.3~rc1") == "1.2.3~rc1"
    for bad in ("1.0-1", "v1", "", "1 0"):
        with pytest.raises(ValueError):
            N.check_version(bad)
