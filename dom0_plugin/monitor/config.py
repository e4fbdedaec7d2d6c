"""The monitor's settings: defaults, overridden by an optional file of ``name = value`` lines
(``/etc/xscontainer-ng/monitor.conf``) and then by command-line options."""
import collections
import logging

log = logging.getLogger(__name__)

CONFIG_FILE = "/etc/xscontainer-ng/monitor.conf"

# name -> (default, help). The type of the default is the type of the setting.
SETTINGS = collections.OrderedDict([
    ("socket", ("/run/xscontainer-monitor.sock",
                "root-only Unix socket the plugin asks for warm-connection requests")),
    ("log_file", ("/var/log/xscontainer-monitor.log", "rotating log file")),
    ("log_level", ("INFO", "DEBUG, INFO, WARNING or ERROR")),
    ("xapi_socket", ("", "XAPI's Unix socket (empty: dom0's local socket)")),
    ("host_uuid", ("", "this host's uuid (empty: from /etc/xensource-inventory)")),
    ("grace_seconds", (120.0, "failure time before the VM is 'unreachable' and a XAPI "
                              "message is posted")),
    ("backoff_initial", (0.5, "first reconnect delay (seconds)")),
    ("backoff_max", (10.0, "longest reconnect delay (seconds), before jitter")),
    ("connect_timeout", (5.0, "TCP connect timeout per address (seconds)")),
    ("login_timeout", (15.0, "SSH handshake and authentication timeout (seconds)")),
    ("tcp_keepalive", (10, "idle seconds before TCP keepalive probes; a dead peer is "
                           "noticed after about twice this")),
    ("ssh_keepalive", (60.0, "SSH-level keepalive interval (seconds; 0: off)")),
    ("write_interval", (1.0, "XAPI writes for one VM: at most one per this many seconds, "
                             "sustained (seconds)")),
    ("write_burst", (3, "XAPI writes for one VM that may go at once, before "
                        "write_interval applies (a burst of human actions)")),
    ("coalesce", (0.03, "wait after a first Docker event before reading the change")),
    ("fetch_interval", (0.25, "shortest time between two container reads for one VM")),
    ("info_interval", (10.0, "shortest time between two docker_info reads after events")),
    ("info_refresh", (300.0, "docker_info is re-read at least this often (seconds)")),
    ("full_resync", (900.0, "the whole container list is re-read this often (seconds)")),
    ("heartbeat", (300.0, "while fresh, the status key's 'confirmed' is renewed this "
                          "often (seconds)")),
    ("request_idle", (300.0, "a request channel unused this long is closed (seconds)")),
    ("request_timeout", (30.0, "deadline of one Docker API request (seconds)")),
    ("workers", (6, "threads that run Docker API requests (shared by all VMs)")),
    ("writers", (3, "threads that write to XAPI (shared by all VMs)")),
    ("event_rate", (300.0, "Docker events read per second per VM, at most (flood guard)")),
    ("event_burst", (3000.0, "Docker events read at once before event_rate applies")),
    ("max_containers", (10000, "containers kept in memory per VM, at most")),
    ("incremental_limit", (64, "changed containers read one by one; more: full re-read")),
])


class Config(object):
    """Attribute access to the settings (``cfg.grace_seconds``)."""

    def __init__(self, **values):
        for name, (default, _) in SETTINGS.items():
            setattr(self, name, default)
        for name, value in values.items():
            self.set(name, value)

    def set(self, name, value):
        if name not in SETTINGS:
            raise ValueError("unknown setting %r" % name)
        default = SETTINGS[name][0]
        try:
            if isinstance(default, bool):
                value = str(value).lower() in ("1", "true", "yes", "on")
            elif isinstance(default, int):
                value = int(value)
            elif isinstance(default, float):
                value = float(value)
            else:
                value = str(value)
        except ValueError:
            raise ValueError("setting %s: %r is not a %s" % (name, value,
                                                               type(default).__name__))
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise ValueError("setting %s must not be negative" % name)
        setattr(self, name, value)

    def as_dict(self):
        return collections.OrderedDict((n, getattr(self, n)) for n in SETTINGS)


def parse_file(text):
    """``name = value`` lines (``#`` comments) -> dict. Raises ValueError on a bad line."""
    values = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise ValueError("line %d: expected 'name = value'" % number)
        values[name.strip().replace("-", "_")] = value.strip()
    return values


def load(path=CONFIG_FILE, overrides=None):
    """Defaults, then the file at ``path`` (when it exists), then ``overrides``."""
    cfg = Config()
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    for name, value in parse_file(text).items():
        cfg.set(name, value)
    for name, value in (overrides or {}).items():
        if value is not None:
            cfg.set(name, value)
    return cfg
