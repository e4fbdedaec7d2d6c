"""XML-RPC wire format of the XenAPI: the envelope, typed (un)marshalling, xapi's error
texts for badly typed parameters.

Parameter conversion errors mirror xapi, whose generated server converts each parameter
with ocaml-rpc's ``*_of_rpc`` (``failwith "Expected string, got 'I(5)'"``) and turns the
exception into ``INTERNAL_ERROR [Printexc.to_string e]``.
"""
import datetime
import re
import xmlrpc.client

from . import schema


class ApiError(Exception):
    """A XenAPI failure: ``ErrorDescription = [code] + params``."""

    def __init__(self, code, params=()):
        Exception.__init__(self, code, list(params))
        self.code = code
        self.params = [str(p) for p in params]

    @property
    def description(self):
        return [self.code] + self.params


def ocaml_escaped(s):
    """OCaml's ``String.escaped`` of the UTF-8 bytes of ``s``."""
    out = []
    for b in s.encode("utf-8", "surrogateescape"):
        c = chr(b)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        elif c == "\b":
            out.append("\\b")
        elif 0x20 <= b <= 0x7e:
            out.append(c)
        else:
            out.append("\\%03d" % b)
    return "".join(out)


def printexc_failure(msg):
    """``Printexc.to_string (Failure msg)``."""
    return 'Failure("%s")' % ocaml_escaped(msg)


def internal_failure(msg):
    return ApiError("INTERNAL_ERROR", [printexc_failure(msg)])


def rpc_to_string(v):
    """ocaml-rpc's ``Rpc.to_string`` of a decoded XML-RPC value (used in its errors)."""
    if isinstance(v, bool):
        return "B(%s)" % ("true" if v else "false")
    if isinstance(v, int):
        return "I(%d)" % v
    if isinstance(v, float):
        return "F(%g)" % v
    if isinstance(v, str):
        return "S(%s)" % v
    if isinstance(v, xmlrpc.client.DateTime):
        return "D(%s)" % v.value
    if isinstance(v, xmlrpc.client.Binary):
        return "B64(%s)" % v.data.decode("latin-1")
    if isinstance(v, (list, tuple)):
        return "[%s]" % ";".join(rpc_to_string(x) for x in v)
    if isinstance(v, dict):
        return "{%s}" % ";".join("%s:%s" % (k, rpc_to_string(x)) for k, x in v.items())
    if v is None:
        return "N"
    return "?"


_OCAML_INT = re.compile(r"^[-+]?(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|[0-9][0-9_]*)$")


def ocaml_int_of_string(s, bits, what):
    """OCaml's ``Int64.of_string`` / ``Int32.of_string``: raises ApiError like xapi."""
    if not _OCAML_INT.match(s):
        raise internal_failure(what)
    body = s.lstrip("+-").replace("_", "")
    neg = s.startswith("-")
    base = 10
    if body[:2].lower() in ("0x", "0o", "0b"):
        base = {"x": 16, "o": 8, "b": 2}[body[1].lower()]
        body = body[2:]
    n = int(body, base)
    limit = 1 << (bits - 1)
    if base != 10 and n < (1 << bits):
        # OCaml accepts the unsigned spelling of hex/octal/binary literals and wraps it
        if n >= limit:
            n -= 1 << bits
    elif n > limit - 1 + (1 if neg else 0):
        raise internal_failure(what)
    return -n if neg else n


def now_datetime():
    return datetime.datetime.utcnow().strftime("%Y%m%dT%H:%M:%SZ")


_DT_FORMATS = ("%Y%m%dT%H:%M:%SZ", "%Y%m%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ",
               "%Y-%m-%dT%H:%M:%S", "%Y%m%dT%H%M%SZ", "%Y%m%dT%H:%M:%S.%fZ",
               "%Y-%m-%dT%H:%M:%S.%fZ")


def parse_datetime(s):
    """A datetime string in one of the ISO 8601 spellings xapi accepts, normalised."""
    for fmt in _DT_FORMATS:
        try:
            d = datetime.datetime.strptime(s, fmt)
            return d.strftime("%Y%m%dT%H:%M:%SZ")
        except ValueError:
            continue
    raise internal_failure("Invalid datetime: %s" % s)


def datetime_key(s):
    """Sortable form of a stored datetime string."""
    return s.replace("-", "")


# ---------------------------------------------------------------- decoding parameters

def decode(t, v):
    """Convert a wire value to the stored form of type ``t`` or raise xapi's error."""
    kind = t[0]
    if kind in ("string", "ref"):
        if isinstance(v, str):
            return v
        raise internal_failure("Expected string, got '%s'" % rpc_to_string(v))
    if kind == "enum":
        if isinstance(v, str):
            for name in t[2]:
                if name.lower() == v.lower():
                    return name
        raise internal_failure("Unknown %s: %s" % (t[1], rpc_to_string(v)))
    if kind == "int":
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        if isinstance(v, str):
            return ocaml_int_of_string(v, 64, "Int64.of_string")
        raise internal_failure("Expected int64, got '%s'" % rpc_to_string(v))
    if kind == "float":
        if isinstance(v, float) or (isinstance(v, int) and not isinstance(v, bool)):
            return float(v)
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                raise internal_failure("float_of_string")
        raise internal_failure("Expected float, got '%s'" % rpc_to_string(v))
    if kind == "bool":
        if isinstance(v, bool):
            return v
        raise internal_failure("Expected bool, got '%s'" % rpc_to_string(v))
    if kind == "datetime":
        if isinstance(v, xmlrpc.client.DateTime):
            return parse_datetime(v.value)
        if isinstance(v, str):
            return parse_datetime(v)
        raise internal_failure("Expected DateTime, got '%s'" % rpc_to_string(v))
    if kind == "set":
        if isinstance(v, list):
            return [decode(t[1], x) for x in v]
        raise internal_failure("Expected Enum, got '%s'" % rpc_to_string(v))
    if kind == "map":
        if isinstance(v, dict):
            return {decode(t[1], k): decode(t[2], x) for k, x in v.items()}
        raise internal_failure("Expected Dict, got '%s'" % rpc_to_string(v))
    if kind == "any":
        return v
    raise AssertionError("unknown type %r" % (t,))


# ---------------------------------------------------------------- encoding results

_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(s):
    """Drop characters XML 1.0 cannot carry, so every response stays parsable."""
    return _BAD_XML.sub("", s)


def encode(t, v):
    """Convert a stored value of type ``t`` to its wire value."""
    kind = t[0]
    if kind in ("string", "ref", "enum"):
        return xml_safe(str(v))
    if kind == "int":
        return str(int(v))
    if kind == "float":
        return float(v)
    if kind == "bool":
        return bool(v)
    if kind == "datetime":
        return xmlrpc.client.DateTime(v)
    if kind == "set":
        return [encode(t[1], x) for x in v]
    if kind == "map":
        return {xml_safe(str(k)): encode(t[2], x) for k, x in v.items()}
    if kind == "any":
        return sanitize(v)
    raise AssertionError("unknown type %r" % (t,))


def sanitize(v):
    """Make an untyped value safe to marshal (strings cleaned recursively)."""
    if isinstance(v, str):
        return xml_safe(v)
    if isinstance(v, list):
        return [sanitize(x) for x in v]
    if isinstance(v, dict):
        return {xml_safe(str(k)): sanitize(x) for k, x in v.items()}
    return v


def encode_record(cls, rec):
    fields = schema.CLASSES[cls].fields
    return {name: encode(f.type, rec[name]) for name, f in fields.items()}


def success(value):
    return {"Status": "Success", "Value": value}


def failure(description):
    return {"Status": "Failure", "ErrorDescription": [xml_safe(str(x)) for x in description]}


def response_body(envelope):
    """The HTTP body of a methodResponse carrying ``envelope``."""
    return xmlrpc.client.dumps((envelope,), methodresponse=True, allow_none=True).encode(
        "utf-8")


def parse_call(body):
    """``(method, params)`` of a methodCall, or raise ValueError for anything else."""
    params, method = xmlrpc.client.loads(body, use_builtin_types=False)
    if not isinstance(method, str):
        raise ValueError("not a methodCall")
    return method, list(params)
