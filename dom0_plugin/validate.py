"""Checks on untrusted input before it reaches a URL, a command or XAPI.

Each check returns the normalised value or raises errors.InvalidArgument(name, reason).
"""

import re

from dom0_plugin.errors import InvalidArgument

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Docker's own name rule; it also covers id prefixes and full ids (lower-case hex).
_CONTAINER_REF = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}")
_FULL_ID = re.compile(r"[0-9a-f]{64}")
_DIGITS = re.compile(r"[0-9]{1,12}")

CONTAINER_REF_MAX = 128
LOGS_TAIL_MAX = 10000
# Unix seconds up to the year 5138: enough, and keeps the number small.
SINCE_MAX = 10 ** 11
GUEST_TEXT_MAX = 1000

# Characters removed from guest text: C0/C1 controls, DEL, surrogates, non-characters.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_WHITESPACE_RUN = re.compile(r"[\t\n\r ]+")


def _show(value, limit=40):
    """A short, safe rendering of a rejected value for the reason text."""
    text = repr(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    return text.encode("ascii", "backslashreplace").decode("ascii")


def _require_str(value, name):
    if not isinstance(value, str):
        raise InvalidArgument(name, "expected a string, got {0}".format(type(value).__name__))


def vm_uuid(value, name="vmuuid", what="a VM uuid"):
    """A VM uuid (8-4-4-4-12 hex digits); returned lower-case."""
    _require_str(value, name)
    if len(value) > 64 or not _UUID.fullmatch(value.lower()):
        raise InvalidArgument(name, "not {0}: {1}".format(what, _show(value)))
    return value.lower()


def container_ref(value, name="container"):
    """A container reference: an id prefix, a full id or a container name.

    Accepts 10..64 lower-case hex characters (prefix or full id) and Docker names
    ``[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}``; rejects anything that could change the
    meaning of a URL path or a command (``/``, ``%``, ``?``, spaces, controls,
    non-ASCII...).
    """
    _require_str(value, name)
    if not value:
        raise InvalidArgument(name, "empty container reference")
    if len(value) > CONTAINER_REF_MAX:
        raise InvalidArgument(name, "container reference longer than {0} characters"
                              .format(CONTAINER_REF_MAX))
    if not _CONTAINER_REF.fullmatch(value):
        raise InvalidArgument(
            name, "not a container id or name (allowed: letters, digits, '_', '.', '-', "
                  "starting with a letter or digit): {0}".format(_show(value)))
    return value


def is_full_id(value):
    """True for a full container id (64 lower-case hex characters)."""
    return isinstance(value, str) and _FULL_ID.fullmatch(value) is not None


def _small_int(value, name, maximum):
    if isinstance(value, bool):
        raise InvalidArgument(name, "expected a number, got a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        raise InvalidArgument(name, "expected a whole number, got {0}".format(_show(value)))
    if number < 0 or number > maximum:
        raise InvalidArgument(name, "must be between 0 and {0}, got {1}"
                              .format(maximum, number))
    return number


def logs_tail(value, name="tail"):
    """How many log lines: an int 0..10000 (or its decimal string), or "all"."""
    if isinstance(value, str) and value.strip().lower() == "all":
        return "all"
    return _small_int(value, name, LOGS_TAIL_MAX)


def logs_since(value, name="since"):
    """A point in time in Unix seconds (int or decimal string); None/"" means none."""
    if value is None or value == "":
        return None
    return _small_int(value, name, SINCE_MAX)


def guest_text(value, limit=GUEST_TEXT_MAX):
    """Make text that came from a guest safe to show in an error message.

    Bytes are decoded as UTF-8 (invalid bytes replaced); control characters,
    surrogates and U+FFFE/U+FFFF are removed (whitespace controls become one space);
    the result is stripped and capped at ``limit`` characters (ending in "...").
    Non-ASCII letters are kept: encoding for an ASCII channel is the writer's job.
    """
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value[:limit * 4 + 4]).decode("utf-8", "replace")
    elif not isinstance(value, str):
        value = repr(value)
    value = value[:limit * 4 + 4]  # bound the work before the regexes run
    value = _WHITESPACE_RUN.sub(" ", value)
    value = _UNPRINTABLE.sub("", value).strip()
    if len(value) > limit:
        value = value[:max(limit - 3, 0)].rstrip() + "..."
    return value


_USERNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")


def username(value, name="username"):
    """A login name for the guest: ``[A-Za-z_][A-Za-z0-9_.-]{0,31}``."""
    _require_str(value, name)
    if not _USERNAME.fullmatch(value):
        raise InvalidArgument(name, "not a user name (letters, digits, '_', '.', '-', at "
                                    "most 32, not starting with a digit, '.' or '-'): {0}"
                              .format(_show(value)))
    return value
