"""The agent daemon: ``python -m guest_agent`` / ``xscontainer-agent``.

One main thread owns the xenstore connection: it publishes the collector's snapshots
(a burst of publish_burst batches at once, then at most one per publish_interval),
answers requests, writes a heartbeat every
resync period, and otherwise blocks on the xenstore watch. Losing xenstore (or never
finding it) is retried with backoff; SIGTERM/SIGINT end it cleanly, marking the report
stopped.
"""

import argparse
import logging
import signal
import sys
import threading
import time

# The agent never uses the Docker SDK's SSH transport; when paramiko is installed the
# SDK imports it (and cryptography) anyway, which costs about 20 MB of RSS. An agent
# process has no other use for it.
if "paramiko" not in sys.modules:
    sys.modules["paramiko"] = None

from guest_agent import __version__
from guest_agent import config as config_mod
from guest_agent.collector import Collector
from guest_agent.publisher import Publisher
from guest_agent.requests import Executor, RequestChannel
from xsc_contract.rate import TokenBucket
from xsc_contract.xenstore import Client, XenstoreError

log = logging.getLogger("xscontainer-agent")

GC_SECONDS = 30.0
# How long the first publish waits for the collector's first look at Docker (so dom0
# does not see a "Docker down" that is only the agent starting).
SETTLE_SECONDS = 5.0


class Agent(object):
    def __init__(self, settings):
        self.settings = settings
        self.xs = None
        self._stopping = threading.Event()
        self._dirty = threading.Event()
        self.collector = Collector(settings.docker, self._on_change,
                                   settings.resync_seconds, settings.retry_max_seconds)
        self.publisher = Publisher(None, __version__, settings.allow,
                                   heartbeat=max(1, int(settings.resync_seconds)),
                                   max_containers=settings.max_containers,
                                   quota_retry=settings.resync_seconds)
        self.channel = RequestChannel(None, settings.allow, Executor(settings.docker),
                                      self._wake)

    def _wake(self):
        xs = self.xs
        if xs is not None:
            xs.wake()

    def _on_change(self):
        self._dirty.set()
        self._wake()

    def stop(self):
        """Ask the agent to end (safe from signal handlers)."""
        self._stopping.set()
        self._wake()

    def run(self):
        log.info("xscontainer-agent %s starting: xenstore %s, docker %s, requests %s",
                 __version__, self.settings.xenbus, self.settings.docker,
                 ", ".join(self.settings.allow) or "off")
        self.collector.start()
        self.channel.start()
        self.collector.settled.wait(SETTLE_SECONDS)
        backoff = 1.0
        try:
            while not self._stopping.is_set():
                try:
                    self._connect()
                    backoff = 1.0
                    self._serve()
                except XenstoreError as problem:
                    log.warning("xenstore: %s; reconnecting in %.0f s", problem, backoff)
                    self._disconnect()
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, 30.0)
                except Exception:   # a bug: start over on a new connection
                    log.exception("agent error; reconnecting in %.0f s", backoff)
                    self._disconnect()
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, 30.0)
        finally:
            self.collector.stop()
            if self.xs is not None:
                self.publisher.mark_stopped(self.collector.snapshot())
            self.channel.stop()
            self._disconnect()
            log.info("stopped")

    def _connect(self):
        xs = Client(self.settings.xenbus)
        self.xs = xs
        self.publisher.reset(xs)
        self.channel.attach(xs)
        self._dirty.set()

    def _disconnect(self):
        xs, self.xs = self.xs, None
        if xs is not None:
            xs.close()

    def _serve(self):
        xs = self.xs
        bucket = TokenBucket(self.settings.publish_interval, self.settings.publish_burst,
                             time.monotonic())
        heartbeat = float(self.publisher.heartbeat)
        last_write = time.monotonic()
        next_gc = time.monotonic() + GC_SECONDS
        while not self._stopping.is_set():
            now = time.monotonic()
            self.channel.flush()
            if self._dirty.is_set() and bucket.ready_at(now) <= now:
                self._dirty.clear()
                if self.publisher.publish(self.collector.snapshot()):
                    log.debug("report published (seq %d)", self.publisher.seq)
                    bucket.take(now)
                    last_write = now
            elif now - last_write >= heartbeat:
                self.publisher.publish(self.collector.snapshot(), heartbeat=True)
                bucket.take(now)
                last_write = now
            if now >= next_gc:
                self.channel.collect_garbage()
                next_gc = now + GC_SECONDS
            deadlines = [last_write + heartbeat, next_gc]
            if self._dirty.is_set():
                deadlines.append(bucket.ready_at(now))
            timeout = max(0.0, min(deadlines) - time.monotonic())
            event = xs.wait_event(timeout)
            scan = False
            while event is not None:
                scan = scan or event.token == self.channel.token
                event = xs.wait_event(0)
            if scan:
                self.channel.scan()


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="xscontainer-agent",
        description="Report this VM's Docker containers to dom0 through xenstore.")
    ap.add_argument("--xenbus", help="xenstore device or socket (default %s)"
                    % config_mod.DEFAULT_XENBUS)
    ap.add_argument("--docker", help="Docker Engine URL (default %s)"
                    % config_mod.DEFAULT_DOCKER)
    ap.add_argument("--config", default=config_mod.DEFAULT_CONFIG,
                    help="config file (default %(default)s; optional)")
    ap.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    ap.add_argument("--version", action="version", version=__version__)
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = config_mod.load(args.config)
    except config_mod.ConfigError as problem:
        sys.stderr.write("xscontainer-agent: %s\n" % problem)
        return 2
    if args.xenbus:
        settings = settings._replace(xenbus=args.xenbus)
    if args.docker:
        settings = settings._replace(docker=args.docker)
    if args.log_level:
        settings = settings._replace(log_level=args.log_level)
    logging.basicConfig(level=getattr(logging, settings.log_level.upper()),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    agent = Agent(settings)

    def on_signal(signum, frame):
        agent.stop()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    agent.run()
    return 0

