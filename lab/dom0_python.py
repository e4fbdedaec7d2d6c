"""Which interpreter plays dom0's Python 3.6: found one way, used everywhere (the lab's
dom0, the pack's byte-compiler, the tests and benchmarks that run code as dom0 does).

The one way: ``$XSCNG_DOM0_PYTHON`` names it, else ``.venv/bin/python3.6`` (the link
``tools/setup.sh`` makes to a ``python3.6`` it found), else a ``python3.6`` on PATH. Each
is checked by running it: a pyenv shim named python3.6 that cannot run is not one.
"""
import functools
import os
import shutil
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIABLE = "XSCNG_DOM0_PYTHON"
VENV_LINK = os.path.join(REPO, ".venv", "bin", "python3.6")
HOW_TO = ("provide dom0's Python 3.6: put a python3.6 on PATH (pyenv install 3.6.15, "
          "or a distribution package) or name one in $%s, then run `make setup`" % VARIABLE)


def _runs_36(path):
    try:
        out = subprocess.run([path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=30,
                             universal_newlines=True)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip() == "3.6"


@functools.lru_cache(maxsize=None)
def find():
    """The path of a working Python 3.6, or None."""
    named = os.environ.get(VARIABLE)
    if named:
        return named if _runs_36(named) else None
    for path in (VENV_LINK, shutil.which("python3.6")):
        if path and _runs_36(path):
            return path
    return None


def why_missing():
    """One line saying why no dom0 Python was found (None when one was)."""
    if find():
        return None
    named = os.environ.get(VARIABLE)
    if named:
        return "$%s=%s is not a working Python 3.6" % (VARIABLE, named)
    return "no Python 3.6 found (%s)" % HOW_TO


def required():
    """The dom0 Python, or RuntimeError saying how to provide it."""
    path = find()
    if path is None:
        raise RuntimeError(why_missing())
    return path
