"""The guest report in xenstore: its layout, its versions, its encoding and its checks.

The one definition of what the guest agent writes and what dom0 accepts. The agent uses
the ``encode_*`` functions; dom0 uses the ``decode_*`` functions, which treat every byte
as hostile: sizes, counts, types, ranges, id and name formats are all checked, and
anything off raises ReportError with a reason. See docs/guest-report.md.

Python 3.6 compatible, stdlib only (dom0 imports it).
"""

import collections
import json
import re

SCHEMA_VERSION = 1

# --- layout (relative to the guest's home /local/domain/<domid>) --------------------
# data/<x> is owned by the guest and not watched by xenopsd (unlike data/service,
# data/ts, attr, control, vm-data, feature): writes here cost no XAPI database event.
ROOT = "data/xscontainer"
NODE_AGENT = "agent"
NODE_STATE = "state"
NODE_VERSION = "version"
NODE_INFO = "info"
NODE_CONTAINERS = "containers"
NODE_REQUESTS = "requests"
NODE_ANSWERS = "answers"

# --- bounds -----------------------------------------------------------------------------
VALUE_MAX = 2048            # oxenstored's largest value
PAGE_SIZE = 20              # container ids per page: 20 * 65 bytes of child names stays
                            # well inside one 4096-byte DIRECTORY reply and C xenstored's
                            # 2048-byte node size (child names count there)
MAX_PAGES = 16
MAX_CONTAINERS = 300        # far below the guest's 1000-node quota
MAX_DEPTH = 6               # JSON nesting in one value
CHUNK_BYTES = 2000          # one piece of an answer
MAX_ANSWER_CHUNKS = 16      # an answer holds at most 32000 bytes of JSON
MAX_PENDING_REQUESTS = 16
MAX_KEPT_ANSWERS = 8
REASON_MAX = 500

VERBS = ("start", "stop", "restart", "pause", "unpause", "top", "inspect", "logs")
LIFECYCLE_VERBS = ("start", "stop", "restart", "pause", "unpause")

STATUS_DONE = "done"
STATUS_REFUSED = "refused"
STATUS_FAILED = "failed"
ANSWER_STATUSES = (STATUS_DONE, STATUS_REFUSED, STATUS_FAILED)

# Why a request was refused or failed (the ``code`` of an answer).
CODE_DISABLED = "disabled"                  # refused: the channel is off in this guest
CODE_VERB_NOT_ALLOWED = "verb_not_allowed"  # refused: not in the guest's allow-list
CODE_BAD_REQUEST = "bad_request"            # refused: malformed or unknown verb
CODE_BUSY = "busy"                          # refused: too many requests pending
CODE_NO_SUCH_CONTAINER = "no_such_container"
CODE_DOCKER_ERROR = "docker_error"
CODE_DOCKER_UNAVAILABLE = "docker_unavailable"
CODE_INTERNAL = "internal"
ANSWER_CODES = ("", CODE_DISABLED, CODE_VERB_NOT_ALLOWED, CODE_BAD_REQUEST, CODE_BUSY,
                CODE_NO_SUCH_CONTAINER, CODE_DOCKER_ERROR, CODE_DOCKER_UNAVAILABLE,
                CODE_INTERNAL)

AGENT_RUNNING = "running"
AGENT_STOPPED = "stopped"
DOCKER_UP = "up"
DOCKER_DOWN = "down"

KNOWN_STATES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")

_ID = re.compile(r"[0-9a-f]{64}\Z")
_REQUEST_ID = re.compile(r"[0-9a-f]{8,32}\Z")
_PAGE = re.compile(r"(0|[1-9][0-9]?)\Z")
_NAME = re.compile(r"/?[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*\Z")
_REF = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}\Z")
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]*\Z")
_IP = re.compile(r"[0-9A-Fa-f.:]*\Z")
_VERSION_TEXT = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+~_-]*\Z")
# Characters no report string may hold: controls (TAB and LF allowed), DEL, surrogates.
_BAD_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")
_INT_MAX = 2 ** 53


class ReportError(ValueError):
    """Something a guest wrote is not a valid report. ``reason`` says what, ``path``
    where (relative to the guest's home), when known."""

    def __init__(self, reason, path=None):
        self.reason = reason
        self.path = path
        ValueError.__init__(self, "%s: %s" % (path, reason) if path else reason)


# --- paths ------------------------------------------------------------------------------

Layout = collections.namedtuple(
    "Layout", "home root agent state version info containers requests answers")
Layout.__doc__ = """Paths of one guest's report. Relative (the guest's own view) when
``home`` is "", absolute (dom0's view) otherwise."""


def layout(domid=None):
    """The report's paths: relative for the agent (domid None), absolute for dom0."""
    if domid is None:
        home, root = "", ROOT
    else:
        if isinstance(domid, bool) or not isinstance(domid, int) or not 0 < domid < 0x7FF0:
            raise ValueError("not a guest domid: %r" % (domid,))
        home = "/local/domain/%d" % domid
        root = home + "/" + ROOT
    return Layout(home, root, root + "/" + NODE_AGENT, root + "/" + NODE_STATE,
                  root + "/" + NODE_VERSION, root + "/" + NODE_INFO,
                  root + "/" + NODE_CONTAINERS, root + "/" + NODE_REQUESTS,
                  root + "/" + NODE_ANSWERS)


def page_path(lay, page):
    return "%s/%d" % (lay.containers, page)


def container_path(lay, page, container_id):
    return "%s/%d/%s" % (lay.containers, page, container_id)


def request_path(lay, request_id):
    return "%s/%s" % (lay.requests, request_id)


def answer_path(lay, request_id):
    return "%s/%s" % (lay.answers, request_id)


def is_container_id(value):
    return isinstance(value, str) and _ID.match(value) is not None


def is_request_id(value):
    return isinstance(value, str) and _REQUEST_ID.match(value) is not None


def check_container_id(value, path=None):
    if not is_container_id(value):
        raise ReportError("not a container id (64 lower-case hex digits): %s"
                          % _show(value), path)
    return value


def check_page_name(value, path=None):
    if not isinstance(value, str) or not _PAGE.match(value) or int(value) >= MAX_PAGES:
        raise ReportError("not a page number 0..%d: %s" % (MAX_PAGES - 1, _show(value)),
                          path)
    return int(value)


# --- JSON in and out --------------------------------------------------------------------

def dumps(value):
    """Compact, ASCII-only, sorted JSON (the same data always gives the same text)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True, sort_keys=True,
                      allow_nan=False)


def _show(value, limit=40):
    text = repr(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    return text.encode("ascii", "backslashreplace").decode("ascii")


def _nesting(text):
    """Deepest nesting of ``[``/``{`` in JSON text (strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
        elif ch in "]}":
            depth -= 1
    return deepest


def _no_duplicates(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise ValueError("duplicate key %s" % _show(key))
        result[key] = value
    return result


def _no_constant(name):
    raise ValueError("%s is not allowed" % name)


def load_value(raw, path=None, limit=VALUE_MAX, max_depth=MAX_DEPTH):
    """Decode one xenstore value as JSON: bytes, at most ``limit`` of them, ASCII,
    nesting at most ``max_depth``, no duplicate keys, no NaN/Infinity."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if not isinstance(raw, (bytes, bytearray)):
        raise ReportError("expected bytes, got %s" % type(raw).__name__, path)
    if len(raw) > limit:
        raise ReportError("value of %d bytes (at most %d)" % (len(raw), limit), path)
    if not raw:
        raise ReportError("empty value", path)
    try:
        text = bytes(raw).decode("ascii")
    except UnicodeDecodeError:
        raise ReportError("value is not ASCII", path)
    if _nesting(text) > max_depth:
        raise ReportError("JSON nested deeper than %d" % max_depth, path)
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates,
                          parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:
        raise ReportError("malformed JSON (%s)" % _show(str(error), 80), path)


# --- field checks -----------------------------------------------------------------------

def _object(value, what, path):
    if not isinstance(value, dict):
        raise ReportError("%s must be a JSON object, got %s" % (what, _json_type(value)),
                          path)
    return value


def _json_type(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _text(value, field, limit, path, pattern=None, empty=True):
    if not isinstance(value, str):
        raise ReportError("%s must be a string, got %s" % (field, _json_type(value)), path)
    if len(value) > limit:
        raise ReportError("%s longer than %d characters" % (field, limit), path)
    if not value and not empty:
        raise ReportError("%s is empty" % field, path)
    if _BAD_TEXT.search(value):
        raise ReportError("%s holds control characters" % field, path)
    if pattern is not None and value and not pattern.match(value):
        raise ReportError("%s has a bad format: %s" % (field, _show(value)), path)
    return value


def _integer(value, field, low, high, path):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ReportError("%s must be an integer, got %s" % (field, _json_type(value)), path)
    if not low <= value <= high:
        raise ReportError("%s out of range %d..%d: %s" % (field, low, high, _show(value)),
                          path)
    return value


def _number(value, field, low, high, path):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ReportError("%s must be a number, got %s" % (field, _json_type(value)), path)
    if not low <= value <= high:
        raise ReportError("%s out of range: %s" % (field, _show(value)), path)
    return value


def _boolean(value, field, path):
    if not isinstance(value, bool):
        raise ReportError("%s must be true or false, got %s" % (field, _json_type(value)),
                          path)
    return value


def _choice(value, field, choices, path):
    if not isinstance(value, str) or value not in choices:
        raise ReportError("%s must be one of %s, got %s"
                          % (field, "/".join(c or '""' for c in choices), _show(value)), path)
    return value


def _required(obj, key, path):
    if key not in obj:
        raise ReportError("missing field %s" % key, path)
    return obj[key]


# --- agent node: the capability flag ------------------------------------------------------

AgentInfo = collections.namedtuple("AgentInfo", "schema agent_version started verbs")
AgentInfo.__doc__ = """Who writes the report: schema version, agent version, when it
started (guest clock, Unix seconds) and the request verbs the guest allows."""


def encode_agent(agent_version, started, verbs):
    return dumps({"schema": SCHEMA_VERSION, "agent": str(agent_version)[:64],
                  "started": int(started), "verbs": [v for v in VERBS if v in verbs]})


def decode_agent(raw, path=None):
    obj = _object(load_value(raw, path), "the agent node", path)
    schema = _integer(_required(obj, "schema", path), "schema", 0, 1000000, path)
    if schema != SCHEMA_VERSION:
        raise ReportError("schema version %d is not supported (this side reads version %d)"
                          % (schema, SCHEMA_VERSION), path)
    version = _text(_required(obj, "agent", path), "agent", 64, path, _VERSION_TEXT, False)
    started = _integer(_required(obj, "started", path), "started", 0, _INT_MAX, path)
    verbs = _required(obj, "verbs", path)
    if not isinstance(verbs, list) or len(verbs) > len(VERBS):
        raise ReportError("verbs must be a list of at most %d verbs" % len(VERBS), path)
    for verb in verbs:
        _choice(verb, "verb", VERBS, path)
    if len(set(verbs)) != len(verbs):
        raise ReportError("verbs are repeated", path)
    return AgentInfo(schema, version, started, tuple(verbs))


# --- state node: freshness and health -------------------------------------------------------

State = collections.namedtuple(
    "State", "seq time status docker error count total truncated heartbeat")
State.__doc__ = """The report's header, written last in every batch: ``seq`` grows with
every write, ``time`` is the guest's clock at that write, ``heartbeat`` the most seconds
between two writes while the agent runs; ``status`` running/stopped, ``docker`` up/down
and ``error`` why; ``count`` containers published out of ``total``; ``truncated`` when
some were left out."""


def encode_state(seq, time, status, docker, error, count, total, truncated, heartbeat):
    error = _ascii_text(error, REASON_MAX)
    return dumps({"seq": int(seq), "time": int(time), "status": status, "docker": docker,
                  "error": error, "count": int(count), "total": int(total),
                  "truncated": bool(truncated), "heartbeat": int(heartbeat)})


def decode_state(raw, path=None):
    obj = _object(load_value(raw, path), "the state node", path)
    seq = _integer(_required(obj, "seq", path), "seq", 0, _INT_MAX, path)
    time = _integer(_required(obj, "time", path), "time", 0, _INT_MAX, path)
    status = _choice(_required(obj, "status", path), "status",
                     (AGENT_RUNNING, AGENT_STOPPED), path)
    docker = _choice(_required(obj, "docker", path), "docker", (DOCKER_UP, DOCKER_DOWN),
                     path)
    error = _text(_required(obj, "error", path), "error", REASON_MAX, path)
    count = _integer(_required(obj, "count", path), "count", 0, MAX_CONTAINERS, path)
    total = _integer(_required(obj, "total", path), "total", 0, 10 ** 9, path)
    truncated = _boolean(_required(obj, "truncated", path), "truncated", path)
    heartbeat = _integer(_required(obj, "heartbeat", path), "heartbeat", 1, 86400, path)
    if count > total or (count < total) != truncated:
        raise ReportError("count %d, total %d and truncated %s disagree"
                          % (count, total, truncated), path)
    return State(seq, time, status, docker, error, count, total, truncated, heartbeat)


# --- version and info nodes ---------------------------------------------------------------

# field: (kind, limit). Kinds: "text" (limit = characters), "int" (0..limit), "bool".
VERSION_FIELDS = collections.OrderedDict([
    ("Version", ("text", 64)), ("ApiVersion", ("text", 16)),
    ("MinAPIVersion", ("text", 16)), ("GitCommit", ("text", 64)),
    ("GoVersion", ("text", 32)), ("Os", ("text", 32)), ("Arch", ("text", 32)),
    ("KernelVersion", ("text", 128)), ("BuildTime", ("text", 64)),
])
INFO_FIELDS = collections.OrderedDict([
    ("ID", ("text", 128)), ("Name", ("text", 256)), ("ServerVersion", ("text", 64)),
    ("Driver", ("text", 64)), ("Containers", ("int", 10 ** 6)),
    ("ContainersRunning", ("int", 10 ** 6)), ("ContainersPaused", ("int", 10 ** 6)),
    ("ContainersStopped", ("int", 10 ** 6)), ("Images", ("int", 10 ** 6)),
    ("IndexServerAddress", ("text", 256)), ("IPv4Forwarding", ("bool", 0)),
    ("OperatingSystem", ("text", 256)), ("OSType", ("text", 32)),
    ("OSVersion", ("text", 64)), ("Architecture", ("text", 32)),
    ("KernelVersion", ("text", 128)), ("NCPU", ("int", 10 ** 6)),
    ("MemTotal", ("int", 2 ** 62)), ("DockerRootDir", ("text", 256)),
    ("CgroupDriver", ("text", 32)), ("CgroupVersion", ("text", 8)),
    ("LoggingDriver", ("text", 64)), ("LiveRestoreEnabled", ("bool", 0)),
])


def _ascii_text(value, limit):
    """A str fit for the report: no control characters, at most ``limit`` chars."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    return _BAD_TEXT.sub("", text.replace("\r", " "))[:limit]


def _encode_fields(source, fields):
    out = collections.OrderedDict()
    if not isinstance(source, dict):
        return out
    for key, (kind, limit) in fields.items():
        value = source.get(key)
        if kind == "text" and isinstance(value, str):
            out[key] = _ascii_text(value, limit)
        elif (kind == "int" and isinstance(value, int) and not isinstance(value, bool)
              and 0 <= value <= limit):
            out[key] = value
        elif kind == "bool" and isinstance(value, bool):
            out[key] = value
    return out


def _fit(obj):
    """Drop the last fields of an ordered dict until its JSON fits in a value."""
    text = dumps(obj)
    while len(text) > VALUE_MAX and obj:
        obj.popitem()
        text = dumps(obj)
    return text


def encode_version(version):
    """The version node from Docker's ``GET /version`` (known fields only)."""
    return _fit(_encode_fields(version, VERSION_FIELDS))


def encode_info(info):
    """The info node from Docker's ``GET /info`` (known, stable fields only)."""
    return _fit(_encode_fields(info, INFO_FIELDS))


def _decode_fields(raw, fields, what, path):
    obj = _object(load_value(raw, path), what, path)
    out = {}
    for key, (kind, limit) in fields.items():
        if key not in obj:
            continue
        value = obj[key]
        if kind == "text":
            out[key] = _text(value, key, limit, path)
        elif kind == "int":
            out[key] = _integer(value, key, 0, limit, path)
        else:
            out[key] = _boolean(value, key, path)
    return out


def decode_version(raw, path=None):
    """Docker's /version fields from the version node (unknown keys are left out)."""
    return _decode_fields(raw, VERSION_FIELDS, "the version node", path)


def decode_info(raw, path=None):
    """Docker's /info fields from the info node (unknown keys are left out)."""
    return _decode_fields(raw, INFO_FIELDS, "the info node", path)


# --- container nodes ----------------------------------------------------------------------

Container = collections.namedtuple(
    "Container", "id names image command created state exit_code ports labels")
Container.__doc__ = """One container as the report holds it: full id, Docker's Names
(with their leading "/"), image, command, created (Unix seconds), Docker's State, exit
code (exited/dead), ports (list of dicts with Docker's IP/PrivatePort/PublicPort/Type)
and labels (dict)."""

NAMES_MAX = 8
NAME_MAX = 256
IMAGE_MAX = 256
COMMAND_MAX = 512
PORTS_MAX = 32
LABELS_MAX = 64
LABEL_KEY_MAX = 128
LABEL_VALUE_MAX = 512
_PORT_TYPES = ("tcp", "udp", "sctp")
_EXITED_TEXT = re.compile(r"Exited \((-?[0-9]{1,10})\)")


def _state_of(summary):
    state = summary.get("State")
    if state in KNOWN_STATES:
        return state
    status = str(summary.get("Status") or "")[:200]     # engines older than API 1.23
    if status.startswith("Up"):
        return "paused" if "(Paused)" in status else "running"
    if status.startswith("Restarting"):
        return "restarting"
    if status.startswith("Created"):
        return "created"
    return "exited"


def _exit_code_of(summary):
    found = _EXITED_TEXT.search(str(summary.get("Status") or "")[:200])
    if not found:
        return 0
    code = int(found.group(1))
    return code if -2 ** 31 <= code < 2 ** 32 else 0


def _clean_ports(ports):
    out = []
    for port in ports if isinstance(ports, list) else []:
        if not isinstance(port, dict) or len(out) >= PORTS_MAX:
            continue
        entry = {}
        ip = port.get("IP")
        if isinstance(ip, str) and len(ip) <= 45 and _IP.match(ip):
            entry["IP"] = ip
        for key in ("PrivatePort", "PublicPort"):
            value = port.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535:
                entry[key] = value
        if port.get("Type") in _PORT_TYPES:
            entry["Type"] = port["Type"]
        if "PrivatePort" in entry and "Type" in entry:
            out.append(entry)
    return out


def _clean_labels(labels):
    out = {}
    if not isinstance(labels, dict):
        return out
    for key in sorted(k for k in labels if isinstance(k, str))[:LABELS_MAX]:
        value = labels[key]
        if not isinstance(value, str) or not key or len(key) > LABEL_KEY_MAX:
            continue
        if _BAD_TEXT.search(key):
            continue
        out[key] = _ascii_text(value, LABEL_VALUE_MAX)
    return out


def encode_container(summary):
    """(id, value) of the node for one item of Docker's ``GET /containers/json?all=1``.

    The value always fits in VALUE_MAX: labels (biggest first), then ports, command and
    image are dropped until it does. Raises ValueError when the item has no valid id.
    """
    container_id = summary.get("Id") if isinstance(summary, dict) else None
    if not is_container_id(container_id):
        raise ValueError("container without a valid id: %s" % _show(container_id))
    names = [n[:NAME_MAX] for n in (summary.get("Names") or [])
             if isinstance(n, str) and _NAME.match(n[:NAME_MAX])][:NAMES_MAX]
    image = summary.get("Image")
    image = image[:IMAGE_MAX] if isinstance(image, str) and _IMAGE.match(image) else ""
    created = summary.get("Created")
    created = created if (isinstance(created, int) and not isinstance(created, bool)
                          and 0 <= created <= _INT_MAX) else 0
    state = _state_of(summary)
    obj = {"Names": names, "Image": image,
           "Command": _ascii_text(summary.get("Command"), COMMAND_MAX),
           "Created": created, "State": state,
           "ExitCode": _exit_code_of(summary) if state in ("exited", "dead") else 0,
           "Ports": _clean_ports(summary.get("Ports")),
           "Labels": _clean_labels(summary.get("Labels"))}
    text = dumps(obj)
    labels = obj["Labels"]
    while len(text) > VALUE_MAX and labels:
        biggest = max(labels, key=lambda k: len(dumps({k: labels[k]})))
        del labels[biggest]
        text = dumps(obj)
    for field, empty in (("Ports", []), ("Command", ""), ("Image", "")):
        if len(text) <= VALUE_MAX:
            break
        obj[field] = empty
        text = dumps(obj)
    while len(text) > VALUE_MAX and len(obj["Names"]) > 1:
        obj["Names"].pop()
        text = dumps(obj)
    return container_id, text


def decode_container(container_id, raw, path=None):
    """A Container from one container node; ``container_id`` is the node's name."""
    check_container_id(container_id, path)
    obj = _object(load_value(raw, path), "a container node", path)
    names = _required(obj, "Names", path)
    if not isinstance(names, list) or len(names) > NAMES_MAX:
        raise ReportError("Names must be a list of at most %d names" % NAMES_MAX, path)
    for name in names:
        _text(name, "a name", NAME_MAX, path, _NAME, empty=False)
    image = _text(obj.get("Image", ""), "Image", IMAGE_MAX, path, _IMAGE)
    command = _text(obj.get("Command", ""), "Command", COMMAND_MAX, path)
    created = _integer(_required(obj, "Created", path), "Created", 0, _INT_MAX, path)
    state = _choice(_required(obj, "State", path), "State", KNOWN_STATES, path)
    exit_code = _integer(obj.get("ExitCode", 0), "ExitCode", -2 ** 31, 2 ** 32 - 1, path)
    ports = obj.get("Ports", [])
    if not isinstance(ports, list) or len(ports) > PORTS_MAX:
        raise ReportError("Ports must be a list of at most %d ports" % PORTS_MAX, path)
    clean_ports = []
    for port in ports:
        _object(port, "a port", path)
        entry = {"PrivatePort": _integer(_required(port, "PrivatePort", path),
                                         "PrivatePort", 0, 65535, path),
                 "Type": _choice(_required(port, "Type", path), "Type", _PORT_TYPES, path)}
        if "PublicPort" in port:
            entry["PublicPort"] = _integer(port["PublicPort"], "PublicPort", 0, 65535, path)
        if "IP" in port:
            entry["IP"] = _text(port["IP"], "IP", 45, path, _IP)
        clean_ports.append(entry)
    labels = obj.get("Labels", {})
    _object(labels, "Labels", path)
    if len(labels) > LABELS_MAX:
        raise ReportError("more than %d labels" % LABELS_MAX, path)
    for key, value in labels.items():
        _text(key, "a label name", LABEL_KEY_MAX, path, empty=False)
        _text(value, "a label value", LABEL_VALUE_MAX, path)
    return Container(container_id, tuple(names), image, command, created, state,
                     exit_code, clean_ports, dict(labels))


# --- requests (dom0 -> guest) ---------------------------------------------------------------

Request = collections.namedtuple("Request", "verb target args")
Request.__doc__ = """One lifecycle request: a verb of VERBS, the container reference it
targets (an id, an id prefix or a name) and the verb's arguments (a dict)."""

GRACE_MAX = 300
LOGS_TAIL_MAX = 10000
LOGS_BYTES_MAX = 24000      # what fits in an answer once escaped as JSON
# Arguments each verb takes: name -> check(value) returning the clean value.
_VERB_ARGS = {
    "stop": ("grace",), "restart": ("grace",), "logs": ("tail", "since", "max_bytes"),
}


def _check_arg(name, value, path):
    if name == "grace":
        return _integer(value, "grace", 0, GRACE_MAX, path)
    if name == "tail":
        if value == "all":
            return value
        return _integer(value, "tail", 0, LOGS_TAIL_MAX, path)
    if name == "since":
        return None if value is None else _integer(value, "since", 0, 10 ** 11, path)
    return _integer(value, "max_bytes", 1, LOGS_BYTES_MAX, path)


def encode_request(verb, target, args=None):
    """The value dom0 writes at requests/<id>; checks what it encodes."""
    request = Request(verb, target, dict(args or {}))
    text = dumps({"verb": request.verb, "target": request.target, "args": request.args})
    decode_request(text)    # never send what the guest would refuse as malformed
    return text


def decode_request(raw, path=None):
    """A Request from a request node (unknown verbs and arguments are errors)."""
    obj = _object(load_value(raw, path), "a request", path)
    extra = set(obj) - set(("verb", "target", "args"))
    if extra:
        raise ReportError("unknown request field %s" % _show(sorted(extra)[0]), path)
    verb = _required(obj, "verb", path)
    if verb not in VERBS:
        raise ReportError("unknown verb %s (known: %s)" % (_show(verb), ", ".join(VERBS)),
                          path)
    target = _text(_required(obj, "target", path), "target", 128, path, _REF, False)
    args = _object(obj.get("args", {}), "args", path)
    allowed = _VERB_ARGS.get(verb, ())
    clean = {}
    for name, value in args.items():
        if name not in allowed:
            raise ReportError("verb %s takes no argument %s" % (verb, _show(name)), path)
        clean[name] = _check_arg(name, value, path)
    return Request(verb, target, clean)


# --- answers (guest -> dom0) ----------------------------------------------------------------

AnswerMeta = collections.namedtuple("AnswerMeta", "status code reason http_status chunks")
AnswerMeta.__doc__ = """The head of an answer: done/refused/failed, a code of
ANSWER_CODES, a reason for a person, Docker's HTTP status when it refused (else 0),
and how many chunks of result JSON follow."""


def encode_answer(status, code="", reason="", http_status=0, result=None):
    """(meta value, [chunk values]) of an answer. The result (any JSON value) is cut in
    CHUNK_BYTES pieces; ValueError when it needs more than MAX_ANSWER_CHUNKS."""
    if status not in ANSWER_STATUSES or code not in ANSWER_CODES:
        raise ValueError("bad answer status/code %r/%r" % (status, code))
    body = "" if result is None else dumps(result)
    chunks = [body[i:i + CHUNK_BYTES] for i in range(0, len(body), CHUNK_BYTES)]
    if len(chunks) > MAX_ANSWER_CHUNKS:
        raise ValueError("answer of %d bytes is too large" % len(body))
    meta = dumps({"status": status, "code": code,
                  "reason": _ascii_text(reason, REASON_MAX),
                  "http_status": int(http_status), "chunks": len(chunks)})
    return meta, chunks


def answer_room():
    """Bytes of result JSON an answer can carry."""
    return CHUNK_BYTES * MAX_ANSWER_CHUNKS


def decode_answer_meta(raw, path=None):
    obj = _object(load_value(raw, path), "an answer", path)
    status = _choice(_required(obj, "status", path), "status", ANSWER_STATUSES, path)
    code = _choice(_required(obj, "code", path), "code", ANSWER_CODES, path)
    reason = _text(_required(obj, "reason", path), "reason", REASON_MAX, path)
    http_status = _integer(obj.get("http_status", 0), "http_status", 0, 599, path)
    chunks = _integer(_required(obj, "chunks", path), "chunks", 0, MAX_ANSWER_CHUNKS, path)
    if status != STATUS_DONE and not code:
        raise ReportError("a %s answer needs a code" % status, path)
    return AnswerMeta(status, code, reason, http_status, chunks)


def decode_answer_result(chunks, path=None):
    """The result JSON value from the answer's chunks (a list of bytes, in order);
    None when there are none."""
    if not chunks:
        return None
    if len(chunks) > MAX_ANSWER_CHUNKS:
        raise ReportError("more than %d chunks" % MAX_ANSWER_CHUNKS, path)
    parts = []
    for index, chunk in enumerate(chunks):
        if not isinstance(chunk, (bytes, bytearray)) or len(chunk) > CHUNK_BYTES:
            raise ReportError("chunk %d is not at most %d bytes" % (index, CHUNK_BYTES), path)
        parts.append(bytes(chunk))
    return load_value(b"".join(parts), path, limit=answer_room(), max_depth=32)
