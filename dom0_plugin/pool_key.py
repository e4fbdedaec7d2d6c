"""The pool's SSH client key pair (ed25519): created on first use, kept in a XAPI secret that
pool.other_config references, so every host of the pool uses the same key and no private key
ever sits in a world-readable file."""
import io
import logging

from dom0_plugin import constants as C
from dom0_plugin.xapi_vm import failure_code

log = logging.getLogger(__name__)

KEY_COMMENT = "xscontainer-ng"


def _generate():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                             serialization.NoEncryption()).decode("ascii")


def _load(pem):
    import paramiko
    return paramiko.Ed25519Key(file_obj=io.StringIO(pem))


def _pool(session):
    return session.xenapi.pool.get_all()[0]


def _read(session, pool_ref):
    secret_uuid = session.xenapi.pool.get_other_config(pool_ref).get(C.KEY_POOL_SSH_SECRET)
    if not secret_uuid:
        return None
    try:
        ref = session.xenapi.secret.get_by_uuid(secret_uuid)
        return session.xenapi.secret.get_value(ref)
    except Exception as e:
        if failure_code(e) in ("UUID_INVALID", "HANDLE_INVALID"):
            log.warning("pool key secret %s is gone: making a new key", secret_uuid)
            return None
        raise


def private_key(session):
    """The pool's paramiko key, created (once, race-free across hosts) when missing."""
    pool_ref = _pool(session)
    pem = _read(session, pool_ref)
    if pem:
        return _load(pem)
    pem = _generate()
    secret = session.xenapi.secret.create({"value": pem})
    secret_uuid = session.xenapi.secret.get_uuid(secret)
    try:
        session.xenapi.pool.add_to_other_config(pool_ref, C.KEY_POOL_SSH_SECRET, secret_uuid)
    except Exception as e:
        session.xenapi.secret.destroy(secret)
        if failure_code(e) != "MAP_DUPLICATE_KEY":
            raise
        # another host created the key at the same moment: use that one
        pem = _read(session, pool_ref)
        if not pem:
            raise
        return _load(pem)
    log.info("created the pool SSH key (secret %s)", secret_uuid)
    return _load(pem)


def public_line(key):
    """The authorized_keys line for the pool key."""
    return "%s %s %s" % (key.get_name(), key.get_base64(), KEY_COMMENT)
