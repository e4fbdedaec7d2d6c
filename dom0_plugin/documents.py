"""Render Docker API answers as the XML documents XO and XenCenter read.

See consumer-contract.md. What every document guarantees:

- ``<?xml version="1.0" ?>`` then one root element; well-formed whatever the input.
- Text is escaped exactly once: every character is written as itself (XAPI strings are
  UTF-8; XO's parser decodes no numeric reference such as ``&#233;``), ``&`` as ``&amp;``,
  and a text holding ``<`` or ``>`` goes in a CDATA section instead: XO's parser
  (fast-xml-parser 4) gives up on a whole document past 1000 ``&lt;``/``&gt;``, and the
  VM then vanishes from XO. Only a channel that must be ASCII (the plugin's stdout)
  escapes, in its own envelope (plugins/xscontainer).
- Characters XML 1.0 cannot carry (controls other than TAB/LF/CR, lone surrogates,
  U+FFFE, U+FFFF) are replaced by U+FFFD.
- Keys that are not safe element names (not ``[A-Za-z_][A-Za-z0-9._-]*``, starting with
  ``xml``, one of the structural names ``item``, ``entry``,
  ``SPECIAL_XS_ENCODED_ELEMENT``, or a name of JavaScript's Object.prototype such as
  ``hasOwnProperty``, which breaks XO's parser) become
  ``<SPECIAL_XS_ENCODED_ELEMENT name="key">value</SPECIAL_XS_ENCODED_ELEMENT>``.
  (XenCenter picks up every ``entry`` element at any depth.)
- Lists become ``<item>`` children, booleans ``True``/``False``, None an empty element.
- Each document fits in constants.DOCUMENT_BUDGET_BYTES counted after XML-RPC escaping
  (the size xapi receives). Over budget, content is dropped, never cut mid-markup.

docker_ps status (``status``), from Docker's ``State`` (``Status`` text as fallback):

    running, restarting     -> Up
    paused                  -> Up (Paused)
    exited, dead, removing  -> Exited (N), N from ExitCode or the "Exited (N)" of
                               Docker's Status text, 0 when neither says
    created                 -> Exited (0)   (never ran; XenCenter shows it halted)

Docker's own ``State`` is kept in the ``state`` field. The required fields (``id``,
``names``, ``container``, ``image``, ``command``, ``created``, ``status``: what XO and
XenCenter show) are in every entry written. docker_ps over budget drops the optional
fields ``labels``, ``ports``, ``state`` (in that order) from every entry, then whole
entries: exited ones before running or paused ones, the oldest first.
"""

import collections
import re
import time

from dom0_plugin import constants as C

# --- text and names -------------------------------------------------------------------

# Text that needs work: & < > or a character XML 1.0 cannot carry.
_NEEDS_WORK = re.compile("[&<>]|[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9._-]*")
_NAME_MAX = 200
_RESERVED_NAMES = frozenset((C.ITEM_ELEMENT, C.ENTRY_ELEMENT, C.SPECIAL_ELEMENT,
                            # Object.prototype's names: as element names they break or
                            # rename in XO's parser (a JavaScript object per element)
                            "__proto__", "constructor", "hasOwnProperty", "isPrototypeOf",
                            "propertyIsEnumerable", "toLocaleString", "toString",
                            "valueOf", "__defineGetter__", "__defineSetter__",
                            "__lookupGetter__", "__lookupSetter__"))

REPLACEMENT_CHAR = "\ufffd"


def escape_text(text):
    """Escape ``text`` for element content: once, XML 1.0 safe, characters as themselves
    (a CDATA section when it holds ``<`` or ``>``; ``]]>`` split across two)."""
    if _NEEDS_WORK.search(text) is None:
        return text
    text = _NOT_XML_CHAR.sub(REPLACEMENT_CHAR, text)
    if "<" in text or ">" in text:
        return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"
    return text.replace("&", "&amp;")


def escape_attribute(text):
    """Escape ``text`` for a double-quoted attribute value. TAB, LF and CR stay numeric
    references: a parser would turn them into spaces (attribute value normalisation)."""
    text = _NOT_XML_CHAR.sub(REPLACEMENT_CHAR, text)
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("\r", "&#13;").replace("\n", "&#10;")
            .replace("\t", "&#9;"))


def is_plain_name(key):
    """True when ``key`` can be written as an element name as it is."""
    return (len(key) <= _NAME_MAX and _NAME.fullmatch(key) is not None
            and not key[:3].lower() == "xml" and key not in _RESERVED_NAMES)


_Tags = collections.namedtuple("_Tags", "open close empty")
_tag_cache = {}
_TAG_CACHE_MAX = 4096


def _tags(key):
    """Open, close and empty tags for a dict key (special element when needed)."""
    tags = _tag_cache.get(key)
    if tags is not None:
        return tags
    if is_plain_name(key):
        tags = _Tags("<%s>" % key, "</%s>" % key, "<%s/>" % key)
        if len(_tag_cache) >= _TAG_CACHE_MAX:
            _tag_cache.clear()
        _tag_cache[key] = tags
    else:
        start = '<%s %s="%s' % (C.SPECIAL_ELEMENT, C.SPECIAL_ELEMENT_ATTR,
                                escape_attribute(key[:_NAME_MAX * 5]))
        tags = _Tags(start + '">', "</%s>" % C.SPECIAL_ELEMENT, start + '"/>')
    return tags


def wire_size(xml):
    """Bytes of ``xml`` once escaped as an XML-RPC string, UTF-8 encoded (what xapi
    receives from the XenAPI client)."""
    try:
        size = len(xml.encode("ascii"))
    except UnicodeEncodeError:
        size = len(xml.encode("utf-8"))
    return size + 3 * (xml.count("<") + xml.count(">")) + 4 * xml.count("&")


# --- generic conversion -----------------------------------------------------------------

# How much of a value is written: longest text (characters), most list/dict items, depth.
Caps = collections.namedtuple("Caps", "text items depth")
FULL_CAPS = Caps(text=65536, items=10000, depth=32)


def _scalar_text(value, caps):
    if value is None:
        return ""
    if value is True:
        return C.VALUE_TRUE
    if value is False:
        return C.VALUE_FALSE
    if isinstance(value, int):
        # A guest could send a huge number; no real Docker field needs 256 bits.
        return str(value) if value.bit_length() <= 256 else ""
    if isinstance(value, float):
        return repr(value)
    if not isinstance(value, str):
        value = str(value)
    if len(value) > caps.text:
        value = value[:caps.text]
    return escape_text(value)


_ITEM_TAGS = _Tags("<%s>" % C.ITEM_ELEMENT, "</%s>" % C.ITEM_ELEMENT,
                   "<%s/>" % C.ITEM_ELEMENT)


def _write_element(out, tags, value, caps, depth):
    if isinstance(value, (dict, list, tuple)):
        if not value or depth >= caps.depth:
            out.append(tags.empty)
            return
        out.append(tags.open)
        _write_children(out, value, caps, depth + 1)
        out.append(tags.close)
        return
    text = _scalar_text(value, caps)
    if text:
        out.append(tags.open)
        out.append(text)
        out.append(tags.close)
    else:
        out.append(tags.empty)


def _write_children(out, value, caps, depth):
    """Write the content of a container value: dict keys or list items."""
    if isinstance(value, dict):
        for count, (key, item) in enumerate(value.items()):
            if count >= caps.items:
                break
            _write_element(out, _tags(key if isinstance(key, str) else str(key)), item,
                           caps, depth)
    else:
        for item in value[:caps.items]:
            _write_element(out, _ITEM_TAGS, item, caps, depth)


def element(key, value, caps=FULL_CAPS):
    """One element ``key`` holding ``value`` (dicts, lists, scalars), as a string."""
    out = []
    _write_element(out, _tags(key if isinstance(key, str) else str(key)), value, caps, 0)
    return "".join(out)


def _document(root, body_parts):
    if not body_parts:
        return "%s<%s/>" % (C.XML_DECLARATION, root)
    return "%s<%s>%s</%s>" % (C.XML_DECLARATION, root, "".join(body_parts), root)


def _empty_document_size(root):
    return wire_size(_document(root, ["x"])) - 1


# --- documents of a Docker answer (info, version, inspect) ---------------------------------

# Tighter and tighter limits tried in turn when a document is over budget.
_CAPS_STEPS = (FULL_CAPS, Caps(1024, 256, 16), Caps(128, 32, 8))


def render_mapping(root, mapping, keep=(), budget=C.DOCUMENT_BUDGET_BYTES):
    """Document ``<root>`` holding the keys of ``mapping``, within ``budget``.

    Over budget: write shorter texts and fewer items, then drop the largest top-level
    keys except those in ``keep``, and at worst write ``<root/>``.
    """
    if not isinstance(mapping, dict):
        raise ValueError("expected a JSON object for %s, got %s"
                         % (root, type(mapping).__name__))
    fixed = _empty_document_size(root)
    for caps in _CAPS_STEPS:
        parts = [(str(key), element(key, value, caps)) for key, value in mapping.items()]
        sizes = [wire_size(part) for _, part in parts]
        if fixed + sum(sizes) <= budget:
            return _document(root, [part for _, part in parts])
    # Still too big: drop the biggest optional keys first.
    total = fixed + sum(sizes)
    order = sorted(range(len(parts)), key=lambda i: sizes[i], reverse=True)
    dropped = set()
    for i in order:
        if total <= budget:
            break
        if parts[i][0] in keep:
            continue
        dropped.add(i)
        total -= sizes[i]
    if total > budget:
        return _document(root, [])
    return _document(root, [part for i, (_, part) in enumerate(parts) if i not in dropped])


# Fields of /info that change on every call: writing them would rewrite docker_info
# into XAPI at every refresh.
INFO_VOLATILE_KEYS = ("SystemTime", "NGoroutines", "NFd", "NEventsListener")
# What XenCenter's "Docker Status" box shows: kept longest when over budget.
_INFO_KEEP = ("ID", "Name", "ServerVersion", "Driver", "IndexServerAddress",
              "ExecutionDriver", "IPv4Forwarding", "Containers", "ContainersRunning",
              "ContainersPaused", "ContainersStopped", "Images")
_VERSION_KEEP = ("Version", "ApiVersion", "MinAPIVersion", "GitCommit", "GoVersion",
                 "Os", "Arch", "KernelVersion")


def render_info(info, budget=C.DOCUMENT_BUDGET_BYTES):
    """``docker_info`` document from Docker's ``GET /info`` (volatile fields left out)."""
    if not isinstance(info, dict):
        raise ValueError("expected a JSON object for docker_info")
    stable = dict((k, v) for k, v in info.items() if k not in INFO_VOLATILE_KEYS)
    return render_mapping(C.ROOT_DOCKER_INFO, stable, _INFO_KEEP, budget)


def render_version(version, budget=C.DOCUMENT_BUDGET_BYTES):
    """``docker_version`` document from Docker's ``GET /version``."""
    return render_mapping(C.ROOT_DOCKER_VERSION, version, _VERSION_KEEP, budget)


def render_inspect(inspect, budget=C.DOCUMENT_BUDGET_BYTES):
    """``docker_inspect`` document from Docker's ``GET /containers/{id}/json``."""
    return render_mapping(C.ROOT_DOCKER_INSPECT, inspect,
                          ("Id", "Name", "State", "Config", "Image", "Created"), budget)


# --- docker_top -------------------------------------------------------------------------

_TOP_CAPS = Caps(text=1024, items=0, depth=0)
_TOP_REQUIRED = frozenset(("CMD", "TIME"))
_PID = re.compile(r"[0-9]{1,10}\Z")


def render_top(top, budget=C.DOCUMENT_BUDGET_BYTES):
    """``docker_top`` document from Docker's ``GET /containers/{id}/top``.

    One ``<item><Process>`` per row, children named after ``Titles`` (special element
    for titles such as ``%CPU``). Rows past the budget are left out. XenCenter refuses the
    whole list when a PID, CMD or TIME cell is empty: a row without a PID is left out,
    an empty CMD or TIME is written ``-`` (as ``ps`` writes a value it does not have).
    """
    if not isinstance(top, dict):
        raise ValueError("expected a JSON object for docker_top")
    titles = top.get("Titles") or []
    rows = top.get("Processes") or []
    if not isinstance(titles, list) or not isinstance(rows, list):
        raise ValueError("Titles and Processes must be lists")
    titles = [t if isinstance(t, str) else str(t) for t in titles[:64]]
    tags = [_tags(t) for t in titles]
    pid_at = titles.index("PID") if "PID" in titles else None
    filled = [t in _TOP_REQUIRED for t in titles]
    wrap_open = "<%s><%s>" % (C.ITEM_ELEMENT, C.PROCESS_ELEMENT)
    wrap_close = "</%s></%s>" % (C.PROCESS_ELEMENT, C.ITEM_ELEMENT)
    room = budget - _empty_document_size(C.ROOT_DOCKER_TOP)
    parts = []
    for row in rows:
        if not isinstance(row, list):
            continue
        if pid_at is not None and not (pid_at < len(row) and _PID.match(
                _scalar_text(row[pid_at], _TOP_CAPS))):
            continue
        out = [wrap_open]
        for index, tag in enumerate(tags):
            text = _scalar_text(row[index], _TOP_CAPS) if index < len(row) else ""
            if not text.strip() and filled[index]:
                text = "-"
            if text:
                out.extend((tag.open, text, tag.close))
            else:
                out.append(tag.empty)
        out.append(wrap_close)
        part = "".join(out)
        room -= wire_size(part)
        if room < 0:
            break
        parts.append(part)
    return _document(C.ROOT_DOCKER_TOP, parts)


# --- docker_ps --------------------------------------------------------------------------

_EXITED_TEXT = re.compile(r"Exited \((-?[0-9]{1,10})\)")
KNOWN_STATES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def _exit_code(container):
    code = container.get("ExitCode")
    if isinstance(code, int) and not isinstance(code, bool) and -2 ** 31 <= code < 2 ** 32:
        return code
    found = _EXITED_TEXT.search(str(container.get("Status") or "")[:200])
    return int(found.group(1)) if found else 0


def normalise_status(container):
    """``Up``, ``Up (Paused)`` or ``Exited (N)`` for a Docker container summary."""
    state = container.get("State")
    if state in ("running", "restarting"):
        return C.STATUS_UP
    if state == "paused":
        return C.STATUS_PAUSED
    if state == "created":
        return C.STATUS_EXITED_FORMAT.format(0)
    if state not in KNOWN_STATES:
        # Engines before API 1.23 have no State: read Docker's Status text instead.
        text = str(container.get("Status") or "")[:200]
        if text.startswith("Up"):
            return C.STATUS_PAUSED if "(Paused)" in text else C.STATUS_UP
        if text.startswith("Restarting"):
            return C.STATUS_UP
    return C.STATUS_EXITED_FORMAT.format(_exit_code(container))


def _state(container, status):
    state = container.get("State")
    if state in KNOWN_STATES:
        return state
    if status == C.STATUS_UP:
        return "running"
    if status == C.STATUS_PAUSED:
        return "paused"
    return "exited"


def _name(names):
    """The container's own name: the first one without a link path, no leading '/'."""
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list):
        return ""
    names = [n for n in names[:64] if isinstance(n, str)]
    for name in names:
        if "/" not in name[1:]:
            return name[1:] if name.startswith("/") else name
    return names[0].lstrip("/") if names else ""


def _created(value):
    if isinstance(value, bool):
        return "0"
    if isinstance(value, (int, float)):
        try:
            return str(int(value))
        except (OverflowError, ValueError):
            return "0"
    if isinstance(value, str) and re.fullmatch("-?[0-9]{1,20}", value):
        return value
    return "0"


def _created_int(container):
    value = _created(container.get("Created"))
    return int(value) if len(value) <= 19 else 0


_PS_CAPS = Caps(text=1024, items=100, depth=4)
# Fields written for each container, in document order; the optional ones are dropped
# in PS_DROP_ORDER when the document is over budget.
PS_REQUIRED = ("id", "names", "container", "image", "command", "created", "status")
PS_FIELDS = PS_REQUIRED + ("state", "ports", "labels")
PS_DROP_ORDER = ("labels", "ports", "state")
_ENTRY_OPEN = "<%s><%s>" % (C.ITEM_ELEMENT, C.ENTRY_ELEMENT)
_ENTRY_CLOSE = "</%s></%s>" % (C.ENTRY_ELEMENT, C.ITEM_ELEMENT)
_ENTRY_SIZE = wire_size(_ENTRY_OPEN + _ENTRY_CLOSE)
_UP_FRAGMENT = "<status>" + C.STATUS_UP  # also matches Up (Paused)

PsDocument = collections.namedtuple("PsDocument", "xml shown total dropped_fields")
PsDocument.__doc__ = """A rendered docker_ps: the XML, containers shown / received, and
the optional fields left out to fit the budget."""


def unknown_status(since):
    """The status of every entry while the VM cannot be seen: words both tools show as
    they are, that give no lifecycle button (XO matches Up / Up (Paused) / Exited (N))."""
    return "Unknown (unreachable since %s)" % time.strftime("%Y-%m-%d %H:%M UTC",
                                                            time.gmtime(since))


def _ps_values(container, status=None):
    container_id = container.get("Id")
    container_id = container_id if isinstance(container_id, str) else ""
    known = status is None
    status = normalise_status(container) if known else status
    return (
        ("id", container_id),
        ("names", _name(container.get("Names"))),
        ("container", container_id[:10]),
        ("image", container.get("Image")),
        ("command", container.get("Command")),
        ("created", _created(container.get("Created"))),
        ("status", status),
        ("state", _state(container, status) if known else "unknown"),
        ("ports", container.get("Ports") if isinstance(container.get("Ports"), list)
         else []),
        ("labels", container.get("Labels") if isinstance(container.get("Labels"), dict)
         else {}),
    )


def _entry_fragments(container, status=None):
    """{field: (xml, wire size)} for one container."""
    fragments = {}
    for field, value in _ps_values(container, status):
        if isinstance(value, (dict, list)):
            xml = element(field, value, _PS_CAPS)
        else:
            text = _scalar_text(value, _PS_CAPS)
            xml = ("<%s>%s</%s>" % (field, text, field)) if text else "<%s/>" % field
        fragments[field] = (xml, wire_size(xml))
    return fragments


def render_ps_document(containers, budget=C.DOCUMENT_BUDGET_BYTES, status=None):
    """Render Docker's ``GET /containers/json?all=1`` list as a PsDocument; ``status``
    (unknown_status()) replaces every entry's when the list is only the last one known."""
    if not isinstance(containers, list):
        raise ValueError("expected a JSON list of containers")
    entries = [_entry_fragments(c, status) for c in containers if isinstance(c, dict)]
    room = budget - _empty_document_size(C.ROOT_DOCKER_PS)

    dropped = ()
    sizes = [_ENTRY_SIZE + sum(size for _, size in f.values()) for f in entries]
    for count in range(len(PS_DROP_ORDER) + 1):
        dropped = PS_DROP_ORDER[:count]
        if count:
            field = PS_DROP_ORDER[count - 1]
            sizes = [s - f[field][1] for s, f in zip(sizes, entries)]
        if sum(sizes) <= room:
            break

    keep = range(len(entries))
    if sum(sizes) > room:
        # Keep running and paused containers first, then the others, each the newest
        # first: what is left out is exited before running, the oldest first.
        created = [_created_int(c) for c in containers if isinstance(c, dict)]

        def priority(i):
            return (0 if entries[i]["status"][0].startswith(_UP_FRAGMENT) else 1,
                    -created[i], i)
        chosen = []
        for i in sorted(keep, key=priority):
            if sizes[i] > room:
                break
            chosen.append(i)
            room -= sizes[i]
        keep = sorted(chosen)

    fields = [f for f in PS_FIELDS if f not in dropped]
    parts = []
    for i in keep:
        fragments = entries[i]
        parts.append(_ENTRY_OPEN)
        parts.extend(fragments[f][0] for f in fields)
        parts.append(_ENTRY_CLOSE)
    return PsDocument(_document(C.ROOT_DOCKER_PS, parts), len(keep), len(entries),
                      dropped)


def render_ps(containers, budget=C.DOCUMENT_BUDGET_BYTES):
    """``docker_ps`` document (a str) from Docker's ``GET /containers/json?all=1``."""
    return render_ps_document(containers, budget).xml
