"""Names and values that are part of the compatibility contract, defined once.

See docs consumer-contract.md: XO and XenCenter read these exact strings, so they must
never change.
"""

# --- VM.other_config keys -------------------------------------------------------------
KEY_MONITOR = "xscontainer-monitor"
KEY_DOCKER_PS = "docker_ps"
KEY_DOCKER_INFO = "docker_info"
KEY_DOCKER_VERSION = "docker_version"
KEY_USERNAME = "xscontainer-username"

# The documents the monitor writes (and wipes when it has nothing valid to write).
DOCUMENT_KEYS = (KEY_DOCKER_PS, KEY_DOCKER_INFO, KEY_DOCKER_VERSION)

# Values of KEY_MONITOR (XO: "False" = shown disabled; XenCenter: lower-case "true").
VALUE_TRUE = "True"
VALUE_FALSE = "False"

# --- plugin ---------------------------------------------------------------------------
PLUGIN_NAME = "xscontainer"

FN_REGISTER = "register"
FN_DEREGISTER = "deregister"
FN_START = "start"
FN_STOP = "stop"
FN_RESTART = "restart"
FN_PAUSE = "pause"
FN_UNPAUSE = "unpause"
FN_GET_INSPECT = "get_inspect"
FN_GET_TOP = "get_top"
FN_GET_CONFIG_DRIVE_DEFAULT = "get_config_drive_default"
FN_CREATE_CONFIG_DRIVE = "create_config_drive"
FN_GET_CONFIG_DRIVE_CONFIGURATION = "get_config_drive_configuration"

# Functions the existing tools call (names and arguments fixed).
COMPATIBLE_FNS = (
    FN_REGISTER, FN_DEREGISTER,
    FN_START, FN_STOP, FN_RESTART, FN_PAUSE, FN_UNPAUSE,
    FN_GET_INSPECT, FN_GET_TOP,
    FN_GET_CONFIG_DRIVE_DEFAULT, FN_CREATE_CONFIG_DRIVE, FN_GET_CONFIG_DRIVE_CONFIGURATION,
)
LIFECYCLE_FNS = (FN_START, FN_STOP, FN_RESTART, FN_PAUSE, FN_UNPAUSE)

# Functions new in xscontainer-ng.
FN_GET_PS = "get_ps"
FN_GET_INFO = "get_info"
FN_GET_VERSION = "get_version"
FN_GET_LOGS = "get_logs"
FN_GET_STATS = "get_stats"
FN_GET_PUBLIC_KEY = "get_public_key"
FN_PREPARE = "prepare"
NEW_FNS = (FN_GET_PS, FN_GET_INFO, FN_GET_VERSION, FN_GET_LOGS, FN_GET_STATS,
           FN_GET_PUBLIC_KEY, FN_PREPARE)

# Plugin argument names used by the existing tools.
ARG_VMUUID = "vmuuid"
ARG_CONTAINER = "container"
ARG_OBJECT = "object"

# Every success result starts with this (XenCenter requires it and strips it).
SUCCESS_PREFIX = "True"

# --- documents ------------------------------------------------------------------------
XML_DECLARATION = '<?xml version="1.0" ?>'

ROOT_DOCKER_PS = "docker_ps"
ROOT_DOCKER_INFO = "docker_info"
ROOT_DOCKER_VERSION = "docker_version"
ROOT_DOCKER_INSPECT = "docker_inspect"
ROOT_DOCKER_TOP = "docker_top"

# Element that carries a key which is not a valid XML name: <X name="key">value</X>.
SPECIAL_ELEMENT = "SPECIAL_XS_ENCODED_ELEMENT"
SPECIAL_ELEMENT_ATTR = "name"

# Wrappers of one container in docker_ps, and of one process in docker_top.
ITEM_ELEMENT = "item"
ENTRY_ELEMENT = "entry"
PROCESS_ELEMENT = "Process"

# Normalised container status: XO matches these exactly.
STATUS_UP = "Up"
STATUS_PAUSED = "Up (Paused)"
STATUS_EXITED_FORMAT = "Exited ({0})"

# xapi refuses an API request whose body is over 300 KiB (http_limit_max_rpc_size).
XAPI_REQUEST_LIMIT_BYTES = 300 * 1024
# Largest size of one document, counted as xapi receives it (UTF-8, after XML-RPC
# escaping): the whole request limit less the envelope of the XenAPI client's
# VM.add_to_other_config(session, vm, key, value), 417 bytes with xapi's references,
# and room for longer ones (tests/dom0/test_document_budget.py measures it on the lab).
DOCUMENT_BUDGET_BYTES = XAPI_REQUEST_LIMIT_BYTES - 1024

# --- error codes (XAPI failure codes the plugin raises; params in brackets) -----------
ERR_INVALID_ARGUMENT = "XSCONTAINER_INVALID_ARGUMENT"          # [name, reason]
ERR_VM_NOT_REGISTERED = "XSCONTAINER_VM_NOT_REGISTERED"        # [vm]
ERR_VM_NOT_RUNNING = "XSCONTAINER_VM_NOT_RUNNING"              # [vm, power_state]
ERR_VM_UNREACHABLE = "XSCONTAINER_VM_UNREACHABLE"              # [vm, reason]
ERR_HOSTKEY_MISMATCH = "XSCONTAINER_HOSTKEY_MISMATCH"          # [vm, expected, got]
ERR_HOSTKEY_UNVERIFIED = "XSCONTAINER_HOSTKEY_UNVERIFIED"      # [vm, fingerprint_seen]
ERR_NO_SUCH_CONTAINER = "XSCONTAINER_NO_SUCH_CONTAINER"        # [vm, container]
ERR_DOCKER_ERROR = "XSCONTAINER_DOCKER_ERROR"                  # [http_status, message]
ERR_DOCKER_UNAVAILABLE = "XSCONTAINER_DOCKER_UNAVAILABLE"      # [vm, reason]
ERR_DOCKER_API_UNSUPPORTED = "XSCONTAINER_DOCKER_API_UNSUPPORTED"  # [vm, engine, ours]
ERR_AUTH_FAILED = "XSCONTAINER_AUTH_FAILED"                    # [vm, reason]
ERR_TIMEOUT = "XSCONTAINER_TIMEOUT"                            # [vm, what]
ERR_PROTOCOL_ERROR = "XSCONTAINER_PROTOCOL_ERROR"              # [vm, reason]
ERR_RESPONSE_TOO_LARGE = "XSCONTAINER_RESPONSE_TOO_LARGE"      # [vm, what, limit_bytes]

# --- xscontainer-ng's own keys and settings (not read by XO / XenCenter) --------------
# VM.other_config: the VM's pinned SSH host key "<type> <base64>", its transport, and the
# monitor's freshness record.
KEY_HOSTKEY = "xscontainer-hostkey"
KEY_TRANSPORT = "xscontainer-transport"
KEY_HOSTKEY_REFUSED = "xscontainer-hostkey-refused"   # last refused key (one message each)
KEY_STATUS = "xscontainer-status"
STATUS_KEYS = (KEY_STATUS,)
# pool.other_config: uuid of the XAPI secret holding the pool's SSH private key.
KEY_POOL_SSH_SECRET = "xscontainer-ssh-key-secret"

MODE_SSH = "ssh"
MODE_AGENT = "agent"
TRANSPORT_MODES = (MODE_SSH, MODE_AGENT)
DEFAULT_USERNAME = "root"

ARG_MODE = "mode"
ARG_USERNAME = "username"
ARG_PASSWORD = "password"
ARG_PASSWORD_SECRET = "password_secret"     # uuid of a XAPI secret holding the password
ARG_FINGERPRINT = "fingerprint"             # the host key the admin verified (SHA256:...)
ARG_TRUST = "trust"                         # "first-use": pin whatever key answers
TRUST_FIRST_USE = "first-use"

ERR_NO_SUCH_VM = "XSCONTAINER_NO_SUCH_VM"                      # [vmuuid]
ERR_AGENT_REFUSED = "XSCONTAINER_AGENT_REFUSED"                # [vm, verb, reason]
ERR_AGENT_INVALID = "XSCONTAINER_AGENT_INVALID"                # [vm, reason]

# Failures of a lifecycle call that also post a XAPI message on the VM.
DOCKER_FAILURE_CODES = (ERR_DOCKER_ERROR, ERR_DOCKER_UNAVAILABLE, ERR_NO_SUCH_CONTAINER)
MESSAGE_OPERATION_FAILED = "XSCONTAINER_OPERATION_FAILED"
# Posted by the monitor on a VM it could not reach for a grace period; removed when
# monitoring recovers (see dom0_plugin/monitor/status.py).
MESSAGE_CANNOT_MONITOR = "XSCONTAINER_CANNOT_MONITOR"
MESSAGE_HOSTKEY_PINNED = "XSCONTAINER_HOSTKEY_PINNED"   # trust=first-use: what was pinned

# Bounds of the new functions' answers (a XAPI reply must stay well under 300 KiB).
LOGS_MAX_BYTES = 64 * 1024  # JSON escaping may grow it several times
STATS_MAX_CONTAINERS = 50
