"""GPG signing of the pack: detached armored signatures and rpmsign, with the caller's keyring
($GNUPGHOME or ~/.gnupg).

xapi verifies update.xml.asc and repodata/repomd.xml.asc with dom0's gpg 2.0 (EL7) and yum
checks the RPM signatures with rpm 4.11: both verify RSA (or DSA) signatures only, so an
EdDSA/ECDSA signing key is refused here rather than on the host.
"""
import os

from pack.tools import BuildError, require, run

_VERIFIABLE_ON_DOM0 = {"1", "2", "3", "17"}  # RSA (any usage), DSA
_ALGO_NAMES = {"18": "ECDH", "19": "ECDSA", "22": "EdDSA"}


class Signer:
    """Signs files with one secret key of the current GnuPG home."""

    def __init__(self, key_id, env=None):
        require("gpg", "rpmsign")
        self.key_id = key_id
        self.env = dict(os.environ if env is None else env)
        self.fingerprint = self._check_key()

    def _gpg(self, *args):
        return run(["gpg", "--batch", "--no-tty"] + list(args), env=self.env)

    def _check_key(self):
        try:
            listing = self._gpg("--with-colons", "--list-secret-keys", self.key_id)
        except BuildError:
            raise BuildError("no secret key %r in the GnuPG home %s" % (
                self.key_id, self.env.get("GNUPGHOME", "~/.gnupg")))
        fingerprint, signing_algos = None, []
        for line in listing.splitlines():
            f = line.split(":")
            if f[0] == "fpr" and fingerprint is None:
                fingerprint = f[9]
            usable = len(f) > 11 and "s" in f[11] and f[1] not in ("e", "r", "d")
            if f[0] in ("sec", "ssb") and usable:
                signing_algos.append(f[3])
        bad = [a for a in signing_algos if a not in _VERIFIABLE_ON_DOM0]
        if not signing_algos or bad:
            raise BuildError("key %s cannot sign for dom0: its signing key algorithm is %s; "
                             "dom0's gpg 2.0 and rpm 4.11 verify RSA/DSA only: use an RSA key"
                             % (self.key_id, ", ".join(_ALGO_NAMES.get(a, a) for a in bad)
                                or "none"))
        return fingerprint

    def export_public(self, path):
        """Write the armored public key (what admins import on their hosts)."""
        text = self._gpg("--armor", "--export", self.fingerprint)
        if "BEGIN PGP PUBLIC KEY BLOCK" not in text:
            raise BuildError("gpg exported no public key for %s" % self.key_id)
        with open(path, "w") as f:
            f.write(text)
        return path

    def detach_sign(self, path):
        """Write path + '.asc', an armored detached signature."""
        sig = path + ".asc"
        if os.path.exists(sig):
            os.unlink(sig)
        self._gpg("--local-user", self.fingerprint, "--digest-algo", "SHA256", "--armor",
                  "--detach-sign", "--output", sig, path)
        return sig

    def sign_rpms(self, paths):
        """Add an RSA/SHA256 header signature to each RPM (rpmsign --addsign)."""
        if paths:
            run(["rpmsign", "--addsign",
                 "--define", "_gpg_name " + self.fingerprint,
                 "--define", "__gpg /usr/bin/gpg",
                 "--define", "_gpg_digest_algo sha256"] + list(paths), env=self.env)
