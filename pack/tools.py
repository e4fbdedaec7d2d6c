"""Running the external build tools, with errors that say which Debian package is missing."""
import shutil
import subprocess

# command -> Debian package that provides it
PROVIDERS = {
    "rpmbuild": "rpm",
    "rpm": "rpm",
    "rpmsign": "rpm",
    "createrepo_c": "createrepo-c",
    "genisoimage": "genisoimage",
    "gpg": "gnupg",
    "dpkg-deb": "dpkg",
}


class BuildError(RuntimeError):
    """A build step failed; the message says which and why."""


def require(*commands):
    """Raise BuildError naming the Debian packages that provide the missing commands."""
    missing = sorted({PROVIDERS.get(c, c) for c in commands if not shutil.which(c)})
    if missing:
        raise BuildError("missing build tools; install them with: apt-get install -y %s"
                         % " ".join(missing))


def run(argv, env=None, cwd=None, input_text=None):
    """Run argv; return stdout (text). Raise BuildError with its output when it fails."""
    proc = subprocess.run(argv, env=env, cwd=cwd, input=input_text, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True)
    if proc.returncode != 0:
        raise BuildError("%s failed (exit %d):\n%s%s" % (" ".join(argv), proc.returncode,
                                                        proc.stdout[-4000:], proc.stderr[-4000:]))
    return proc.stdout
