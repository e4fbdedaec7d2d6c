"""Byte-compile the dom0 tree for dom0's Python 3.6 (when a 3.6 interpreter is at hand).

Compiling at build time means dom0 never writes __pycache__ files the RPM does not own, and
it doubles as a check that nothing in the tree needs syntax newer than 3.6.
"""
from lab import dom0_python
from pack.tools import BuildError, run


def find_python36():
    """dom0's Python 3.6 (lab/dom0_python.py), or None."""
    return dom0_python.find()


def compile_tree(python, staged_dir, installed_dir):
    """Write __pycache__/*.cpython-36.pyc next to every .py below staged_dir.

    Tracebacks name the installed paths (compileall -d).
    """
    try:
        run([python, "-m", "compileall", "-q", "-d", installed_dir, staged_dir])
    except BuildError as e:
        raise BuildError("byte-compiling %s for Python 3.6 failed (syntax newer than 3.6?)"
                         ":\n%s" % (installed_dir, e))
