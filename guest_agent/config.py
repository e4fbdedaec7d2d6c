"""The agent's settings: defaults, the config file, then command-line overrides.

The config file (INI, default /etc/xscontainer-agent/agent.conf) is optional::

    [agent]
    resync_seconds = 60        ; full resync and heartbeat period
    retry_max_seconds = 30     ; longest wait between two tries to reach Docker
    publish_interval = 1.0     ; report writes: at most one a second, sustained...
    publish_burst = 3          ; ...after a burst of this many at once
    max_containers = 300       ; containers published (at most 300)
    log_level = info

    [docker]
    url = unix:///var/run/docker.sock

    [xenstore]
    path = /dev/xen/xenbus

    [requests]
    ; Off unless listed: verbs dom0 may ask for (start stop restart pause unpause
    ; top inspect logs). Anything else is refused.
    allow = start, stop, restart

A file that cannot be parsed, or an unknown verb, is a ConfigError: the agent refuses
to start rather than run with settings the admin did not mean.
"""

import collections
import configparser
import os

from xsc_contract import report_schema as S

DEFAULT_CONFIG = "/etc/xscontainer-agent/agent.conf"
DEFAULT_XENBUS = "/dev/xen/xenbus"
DEFAULT_DOCKER = "unix:///var/run/docker.sock"

Settings = collections.namedtuple(
    "Settings", "xenbus docker allow resync_seconds retry_max_seconds publish_interval "
                "publish_burst max_containers log_level")

DEFAULTS = Settings(xenbus=DEFAULT_XENBUS, docker=DEFAULT_DOCKER, allow=(),
                    resync_seconds=60.0, retry_max_seconds=30.0, publish_interval=1.0,
                    publish_burst=3,
                    max_containers=S.MAX_CONTAINERS, log_level="info")

_LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(ValueError):
    pass


def parse_verbs(text):
    """``"start, stop restart"`` -> ("start", "stop", "restart") in VERBS order."""
    words = [w for w in text.replace(",", " ").split() if w]
    unknown = [w for w in words if w not in S.VERBS]
    if unknown:
        raise ConfigError("unknown verb(s) in [requests] allow: %s (known: %s)"
                          % (", ".join(unknown), ", ".join(S.VERBS)))
    return tuple(v for v in S.VERBS if v in words)


def _number(parser, section, key, default, low, high):
    if not parser.has_option(section, key):
        return default
    text = parser.get(section, key)
    try:
        value = float(text)
    except ValueError:
        raise ConfigError("[%s] %s: not a number: %r" % (section, key, text))
    if not low <= value <= high:
        raise ConfigError("[%s] %s must be between %s and %s" % (section, key, low, high))
    return value


def load(path=DEFAULT_CONFIG, must_exist=False):
    """Settings from the file at ``path`` (defaults when it does not exist)."""
    settings = DEFAULTS
    if not os.path.exists(path):
        if must_exist:
            raise ConfigError("config file %s does not exist" % path)
        return settings
    parser = configparser.ConfigParser(inline_comment_prefixes=(";", "#"))
    try:
        with open(path) as handle:
            parser.read_file(handle)
    except (OSError, configparser.Error, UnicodeDecodeError) as error:
        raise ConfigError("cannot read %s: %s" % (path, error))
    known = {"agent": ("resync_seconds", "retry_max_seconds", "publish_interval",
                       "publish_burst", "max_containers", "log_level"),
             "docker": ("url",), "xenstore": ("path",), "requests": ("allow",)}
    for section in parser.sections():
        if section not in known:
            raise ConfigError("%s: unknown section [%s]" % (path, section))
        for key in parser.options(section):
            if key not in known[section]:
                raise ConfigError("%s: unknown setting %s in [%s]" % (path, key, section))
    log_level = parser.get("agent", "log_level", fallback=settings.log_level).lower()
    if log_level not in _LOG_LEVELS:
        raise ConfigError("[agent] log_level must be one of %s" % ", ".join(_LOG_LEVELS))
    return settings._replace(
        xenbus=parser.get("xenstore", "path", fallback=settings.xenbus),
        docker=parser.get("docker", "url", fallback=settings.docker),
        allow=parse_verbs(parser.get("requests", "allow", fallback="")),
        resync_seconds=_number(parser, "agent", "resync_seconds", settings.resync_seconds,
                               1, 3600),
        retry_max_seconds=_number(parser, "agent", "retry_max_seconds",
                                  settings.retry_max_seconds, 1, 600),
        publish_interval=_number(parser, "agent", "publish_interval",
                                 settings.publish_interval, 0.2, 60),
        publish_burst=int(_number(parser, "agent", "publish_burst", settings.publish_burst,
                                  1, 20)),
        max_containers=int(_number(parser, "agent", "max_containers",
                                   settings.max_containers, 0, S.MAX_CONTAINERS)),
        log_level=log_level)
