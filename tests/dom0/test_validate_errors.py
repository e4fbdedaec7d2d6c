"""Input checks (validate.py) and the error type (errors.py)."""

import pickle
import string
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dom0_plugin import constants as C
from dom0_plugin import errors, validate
from dom0_plugin.errors import XscError

FULL_ID = "0123456789abcdef" * 4


@pytest.mark.parametrize("ref", [FULL_ID, FULL_ID[:10], FULL_ID[:12], "web", "my_app.1-x",
                                 "A", "0", "x" * 128, "a..b"])
def test_container_refs_accepted(ref):
    assert validate.container_ref(ref) == ref


@pytest.mark.parametrize("ref", [
    "", "/web", "a/b", "..", "../etc", "?all=1", "a?b", "a%2Fb", "%2F", "a;b", "a b",
    " web", "web\n", "a\x00", "x" * 129, "x" * 10000, "caf\u00e9", "\uff57eb", "-web",
    ".web", "_web", "a#b", "a&b", "a:b", "a\\b", "a\tb", None, 5, b"web", ["web"],
])
def test_container_refs_rejected(ref):
    with pytest.raises(XscError) as excinfo:
        validate.container_ref(ref, "object")
    assert excinfo.value.code == C.ERR_INVALID_ARGUMENT
    assert excinfo.value.params[0] == "object"
    excinfo.value.params[1].encode("ascii")        # the reason is safe to print


@given(st.text(max_size=200))
def test_accepted_refs_are_url_and_shell_inert(text):
    try:
        ref = validate.container_ref(text)
    except XscError:
        return
    assert quote(ref, safe="") == ref
    assert set(ref) <= set(string.ascii_letters + string.digits + "_.-")
    assert not ref.startswith((".", "-"))


def test_full_id():
    assert validate.is_full_id(FULL_ID)
    for bad in (FULL_ID[:63], FULL_ID.upper(), FULL_ID + "0", None, "web"):
        assert not validate.is_full_id(bad)


def test_vm_uuid():
    good = "3f1a2b4c-5d6e-4f70-8192-a3b4c5d6e7f8"
    assert validate.vm_uuid(good) == good
    assert validate.vm_uuid(good.upper()) == good
    for bad in ("", "x", good + "0", good[:-1], good.replace("-", ""), " " + good,
                good + "\n", None, "../" + good):
        with pytest.raises(XscError):
            validate.vm_uuid(bad)


@pytest.mark.parametrize("value,expected", [(0, 0), (10000, 10000), ("100", 100),
                                            ("all", "all"), ("ALL", "all"), (" 5 ", 5)])
def test_logs_tail_accepted(value, expected):
    assert validate.logs_tail(value) == expected


@pytest.mark.parametrize("value", [-1, 10001, "1e3", "", "ten", True, 1.5, None,
                                   "\u0661", "99999999999999"])
def test_logs_tail_rejected(value):
    with pytest.raises(XscError):
        validate.logs_tail(value)


def test_logs_since():
    assert validate.logs_since(None) is None and validate.logs_since("") is None
    assert validate.logs_since("1700000000") == 1700000000
    for bad in (-1, "-1", "x", 10 ** 12, False):
        with pytest.raises(XscError):
            validate.logs_since(bad)


def test_username():
    assert validate.username("core") == "core"
    for bad in ("", "root;id", "a b", "-x", "x" * 33, "\u00e9"):
        with pytest.raises(XscError):
            validate.username(bad)


@given(st.one_of(st.text(), st.binary()), st.integers(min_value=3, max_value=300))
def test_guest_text_is_bounded_and_printable(value, limit):
    text = validate.guest_text(value, limit)
    assert len(text) <= limit
    assert all(ord(ch) >= 0x20 and not 0x7f <= ord(ch) <= 0x9f for ch in text)
    assert not any(0xD800 <= ord(ch) <= 0xDFFF for ch in text)
    text.encode("utf-8")


def test_guest_text_examples():
    assert validate.guest_text(b"no such\n\tthing\x1b[0m") == "no such thing[0m"
    assert validate.guest_text("x" * 2000, 10) == "xxxxxxx..."
    assert validate.guest_text(None) == ""
    assert validate.guest_text({"a": 1}) == "{'a': 1}"


# --- errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("error,code,params,words", [
    (errors.InvalidArgument("container", "bad"), C.ERR_INVALID_ARGUMENT,
     ["container", "bad"], "Invalid argument 'container'"),
    (errors.VmNotRegistered("vm1"), C.ERR_VM_NOT_REGISTERED, ["vm1"], "register"),
    (errors.VmNotRunning("vm1", "Halted"), C.ERR_VM_NOT_RUNNING, ["vm1", "Halted"],
     "Start the VM"),
    (errors.VmUnreachable("vm1", "no IP"), C.ERR_VM_UNREACHABLE, ["vm1", "no IP"], "sshd"),
    (errors.HostKeyMismatch("vm1", "SHA256:a", "SHA256:b"), C.ERR_HOSTKEY_MISMATCH,
     ["vm1", "SHA256:a", "SHA256:b"], "run prepare again with fingerprint="),
    (errors.HostKeyUnverified("vm1", "SHA256:b"), C.ERR_HOSTKEY_UNVERIFIED,
     ["vm1", "SHA256:b"], "no credential was sent"),
    (errors.NoSuchContainer("vm1", "web"), C.ERR_NO_SUCH_CONTAINER, ["vm1", "web"],
     "refresh"),
    (errors.DockerError(409, "conflict"), C.ERR_DOCKER_ERROR, ["409", "conflict"],
     "HTTP 409"),
    (errors.DockerUnavailable("vm1", "permission denied"), C.ERR_DOCKER_UNAVAILABLE,
     ["vm1", "permission denied"], "'docker' group"),
    (errors.AuthFailed("vm1", "denied"), C.ERR_AUTH_FAILED, ["vm1", "denied"],
     "authorized_keys"),
    (errors.Timeout("vm1", "GET /info"), C.ERR_TIMEOUT, ["vm1", "GET /info"], "retry"),
    (errors.ProtocolError("vm1", "junk"), C.ERR_PROTOCOL_ERROR, ["vm1", "junk"],
     "dial-stdio"),
    (errors.ResponseTooLarge("vm1", "GET /x", 10), C.ERR_RESPONSE_TOO_LARGE,
     ["vm1", "GET /x", "10"], "10 bytes"),
])
def test_error_codes(error, code, params, words):
    assert isinstance(error, XscError)
    assert (error.code, error.params) == (code, params)
    assert error.failure() == [code] + params
    assert str(error).startswith(code + ": ") and words in str(error)
    again = errors.from_failure(error.failure())
    assert type(again) is type(error) and again.failure() == error.failure()
    assert pickle.loads(pickle.dumps(error)).failure() == error.failure()


def test_unknown_codes_stay_readable():
    error = errors.from_failure(["SOMETHING_ELSE", "a", 1])
    assert type(error) is XscError and error.params == ["a", "1"]
    assert "SOMETHING_ELSE" in str(error)
    assert errors.from_failure([C.ERR_TIMEOUT, "only-one"]).params == ["only-one"]
