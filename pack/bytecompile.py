"""Byte-compile the dom0 tree for dom0's Python 3.6 (when a 3.6 interpreter is at hand).

Compiling at build time means dom0 never writes __pycache__ files the RPM does not own, and
it doubles as a check that nothing in the tree needs syntax newer than 3.6.
"""
import os

from pack.tools import BuildError, run

CANDIDATES = ("/root/.pyenv/versions/3.6.15/bin/python3.6", "/usr/bin/python3.6",
              "/usr/local/bin/python3.6")


def find_python36():
    """A Python 3.6 interpreter ($XSCNG_DOM0_PYTHON first), or None."""
    override = os.environ.get("XSCNG_DOM0_PYTHON")
    for path in ((override,) if override else ()) + CANDIDATES:
        if path and os.access(path, os.X_OK):
            return path
    return None


def compile_tree(python, staged_dir, installed_dir):
    """Write __pycache__/*.cpython-36.pyc next to every .py below staged_dir.

    Tracebacks name the installed paths (compileall -d).
    """
    try:
        run([python, "-m", "compileall", "-q", "-d", installed_dir, staged_dir])
    except BuildError as e:
        raise BuildError("byte-compiling %s for Python 3.6 failed (syntax newer than 3.6?)"
                         ":\n%s" % (installed_dir, e))
