"""xapi's own XML and XML-RPC code, as used between xapi and host plugins.

xapi serialises a plugin's ``methodCall`` with its xml-light2 printer and decodes the
plugin's stdout with xml-light2's parser plus its ``XMLRPC.From`` functions. Both have
quirks a plugin can see, reproduced here:

- printer: no XML declaration; strings as bare ``<value>text</value>``, the empty string
  as ``<value/>`` (any empty element is self-closed); ``> < & "`` escaped as
  ``&gt; &lt; &amp; &quot;`` and nothing else; control characters other than TAB, LF and
  CR silently dropped.
- parser: only the first root element counts (anything after it is ignored); text made
  only of spaces, tabs and newlines is dropped (so a whitespace-only string value reads
  as ""); elements with attributes never match.
- decoder: a structural mismatch raises ``RunTimeTypeError``, which xapi reports as
  ``INTERNAL_ERROR [Printexc.to_string e]``.
"""
import collections
import re
import xml.parsers.expat

from .wire import ocaml_escaped, ocaml_int_of_string, ApiError

El = collections.namedtuple("El", "tag attrs children")

# ---------------------------------------------------------------- printing

_DROP = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def esc_pcdata(s):
    """xml-light2's escaping of character data."""
    s = _DROP.sub("", s)
    return (s.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")
            .replace('"', "&quot;"))


def to_string(node):
    """xml-light2's compact printer (no declaration, empty elements self-closed)."""
    if isinstance(node, str):
        return esc_pcdata(node)
    if not node.children:
        return "<%s/>" % node.tag
    return "<%s>%s</%s>" % (node.tag, "".join(to_string(c) for c in node.children),
                            node.tag)


def _box(tag, *children):
    return El(tag, [], list(children))


def _string_value(s):
    return _box("value") if s == "" else _box("value", s)


def method_call(method, session_ref, args):
    """The argv[1] xapi gives a plugin: methodCall(fn, [session ref; struct of args])."""
    members = [_box("member", _box("name", k) if k != "" else _box("name"), _string_value(v))
               for k, v in args]
    call = _box("methodCall",
                _box("methodName", method) if method != "" else _box("methodName"),
                _box("params",
                     _box("param", _string_value(session_ref)),
                     _box("param", _box("value", _box("struct", *members)))))
    return to_string(call)


# ---------------------------------------------------------------- parsing

class XmlError(Exception):
    """xml-light2's ``Xml.Error``; ``str()`` is xapi's ``Xml.error e`` text."""


class _RootDone(Exception):
    pass


def _is_blank(s):
    return all(c in " \n\t" for c in s)


def parse(data):
    """Parse plugin output into El/str nodes the way xml-light2 does."""
    p = xml.parsers.expat.ParserCreate()
    stack = []
    root = []

    def start(tag, attrs):
        el = El(tag, list(attrs.items()), [])
        if stack:
            stack[-1].children.append(el)
        stack.append(el)

    def end(tag):
        el = stack.pop()
        el.children[:] = [c for c in el.children if not (isinstance(c, str) and _is_blank(c))]
        if not stack:
            root.append(el)
            raise _RootDone()

    def chars(text):
        if not stack:
            return
        kids = stack[-1].children
        if kids and isinstance(kids[-1], str):
            kids[-1] += text
        else:
            kids.append(text)

    p.StartElementHandler = start
    p.EndElementHandler = end
    p.CharacterDataHandler = chars
    p.buffer_text = True
    try:
        p.Parse(data, True)
    except _RootDone:
        return root[0]
    except xml.parsers.expat.ExpatError as e:
        if root:
            return root[0]
        raise XmlError(_xmlm_message(e))
    if root:
        return root[0]
    raise XmlError("unexpected end of input line %d" % p.CurrentLineNumber)


def _xmlm_message(e):
    # Xmlm's wording for the common cases; expat's own text otherwise.
    code = e.code
    errors = xml.parsers.expat.errors
    if code in (errors.codes[errors.XML_ERROR_NO_ELEMENTS],
                errors.codes[errors.XML_ERROR_UNCLOSED_TOKEN],
                errors.codes[errors.XML_ERROR_PARTIAL_CHAR]):
        msg = "unexpected end of input"
    elif code == errors.codes[errors.XML_ERROR_SYNTAX] and e.lineno == 1 and e.offset == 0:
        msg = "expected root element"
    elif code == errors.codes[errors.XML_ERROR_INVALID_TOKEN]:
        msg = "malformed character stream"
    else:
        msg = xml.parsers.expat.ErrorString(code)
    return "%s line %d" % (msg, e.lineno)


# ---------------------------------------------------------------- XMLRPC.From

class RunTimeTypeError(Exception):
    """xapi's ``XMLRPC.RunTimeTypeError``; ``printexc`` is how xapi reports it."""

    def __init__(self, name):
        Exception.__init__(self, name)
        self.name = name

    @property
    def printexc(self):
        return 'XMLRPC.RunTimeTypeError("%s", _)' % ocaml_escaped(self.name)


class OCamlNotFound(Exception):
    """OCaml's ``Not_found`` escaping from ``List.assoc``."""


def _pretty(node):
    if isinstance(node, str):
        return "PCData=" + ocaml_escaped(node)
    return "Element=" + ocaml_escaped(node.tag)


def _unbox(ok, f, node):
    if isinstance(node, El) and not node.attrs and node.tag in ok:
        return f(node.children)
    raise RunTimeTypeError("unbox: %s should contain '%s'" % (_pretty(node), ok[0]))


def _singleton(ok, f, node):
    def one(children):
        if len(children) == 1:
            return f(children[0])
        raise RunTimeTypeError("singleton: {%s} should be the singleton {%s}" % (
            ", ".join(_pretty(c) for c in children), ok[0]))
    return _unbox(ok, one, node)


def _pair(ok, f1, f2, node):
    def two(children):
        if len(children) == 2:
            return f1(children[0]), f2(children[1])
        raise RunTimeTypeError("pair ")
    return _unbox(ok, two, node)


def _pcdata(node):
    if isinstance(node, str):
        return node
    raise RunTimeTypeError("pcdata")


def _name(node):
    def inner(children):
        if len(children) == 1 and isinstance(children[0], str):
            return children[0]
        if not children:
            return ""
        raise RunTimeTypeError("From.name: should contain PCData")
    return _unbox(["name"], inner, node)


def from_string(node):
    """``XMLRPC.From.string``."""
    if isinstance(node, El) and node.tag == "value" and not node.attrs:
        kids = node.children
        if len(kids) == 1 and isinstance(kids[0], str):
            return kids[0]
        if not kids:
            return ""
        if (len(kids) == 1 and isinstance(kids[0], El) and kids[0].tag == "string"
                and not kids[0].attrs and not kids[0].children):
            return ""
    return _singleton(["value"], lambda v: _singleton(["string"], _pcdata, v), node)


def _structure(node):
    return _singleton(["value"], lambda s: _unbox(
        ["struct"], lambda members: [_pair(["member"], _name, lambda x: x, m)
                                     for m in members], s), node)


def _assoc(key, pairs):
    for k, v in pairs:
        if k == key:
            return v
    raise OCamlNotFound()


def _array(node):
    return _singleton(["value"], lambda a: _singleton(
        ["array"], lambda d: _unbox(["data"], lambda items: items, d), a), node)


def _status(node):
    bindings = _structure(node)
    try:
        status = from_string(_assoc("Status", bindings))
        if status == "Success":
            return ("success", _assoc("Value", bindings))
        if status == "Failure":
            items = _array(_assoc("ErrorDescription", bindings))
            if not items:
                raise RunTimeTypeError("Empty array of error strings")
            return ("failure", from_string(items[0]), [from_string(x) for x in items[1:]])
        raise OCamlNotFound()
    except OCamlNotFound:
        raise RunTimeTypeError("Status")


def _int32(node):
    text = _singleton(["value"], lambda v: _singleton(["i4", "int"], _pcdata, v), node)
    try:
        return ocaml_int_of_string(text, 32, "Int32.of_string")
    except ApiError:
        raise _OCamlFailure("Int32.of_string")


class _OCamlFailure(Exception):
    pass


def _fault(node):
    def aux(inner):
        m = _structure(inner)
        return _int32(_assoc("faultCode", m)), from_string(_assoc("faultString", m))
    return _singleton(["fault"], aux, node)


def method_response(tree):
    """``XMLRPC.From.methodResponse``: ('success', value-node) | ('failure', code, params)
    | ('fault', code, reason). Raises RunTimeTypeError, OCamlNotFound or _OCamlFailure."""
    def inner(child):
        if isinstance(child, El) and child.tag == "params":
            params = _unbox(["params"], lambda ps: [_singleton(["param"], lambda x: x, p)
                                                    for p in ps], child)
            if len(params) == 1:
                return _status(params[0])
            raise RunTimeTypeError("Expected single return value (struct status)")
        if isinstance(child, El) and child.tag == "fault":
            code, reason = _fault(child)
            return ("fault", code, reason)
        raise RunTimeTypeError("response")
    return _singleton(["methodResponse"], inner, tree)


def decode_plugin_output(stdout):
    """Map a plugin's stdout to its result string or an ApiError, exactly as xapi's
    ``Xapi_plugins.call_plugin`` does."""
    text = stdout.decode("utf-8", "replace")
    try:
        tree = parse(stdout)
    except XmlError as e:
        raise ApiError("XENAPI_PLUGIN_FAILURE", ["failed to parse plugin output", text, str(e)])
    try:
        kind, *rest = method_response(tree)
        if kind == "fault":
            code, reason = rest
            raise ApiError("XENAPI_PLUGIN_FAILURE", ["fault", str(code), reason])
        if kind == "failure":
            code, params = rest
            raise ApiError(code, params)
        return from_string(rest[0])
    except RunTimeTypeError as e:
        raise ApiError("INTERNAL_ERROR", [e.printexc])
    except OCamlNotFound:
        raise ApiError("INTERNAL_ERROR", ["Not_found"])
    except _OCamlFailure as e:
        raise ApiError("INTERNAL_ERROR", ['Failure("%s")' % e.args[0]])
