"""xscontainer-monitor's main: wiring, logging, signals and supervision.

Threads, whatever the number of VMs: the event loop (all SSH connections, the request
socket, every follower), ``xapi-events``, ``writers`` XAPI writers and ``workers`` Docker
request workers. A follower that fails is restarted by its own supervision loop; if a
XAPI thread dies (a bug), the process exits non-zero and systemd restarts it
(``Restart=always`` in xscontainer-monitor.service).
"""
import argparse
import asyncio
import concurrent.futures
import logging
import logging.handlers
import os
import signal
import sys
import threading
import time
import warnings

from dom0_plugin import __version__, inventory
from dom0_plugin.monitor import config, manager, server, xapi_link

log = logging.getLogger("xscontainer-monitor")

WATCHDOG_PERIOD = 5.0
STOP_DRAIN_SECONDS = 5.0


def setup_logging(cfg):
    warnings.filterwarnings("ignore", message=".*Python 3.6.*")
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    try:
        # rotated by logrotate (the pack's /etc/logrotate.d/xscontainer-ng)
        handler = logging.handlers.WatchedFileHandler(cfg.log_file)
    except OSError as error:
        sys.stderr.write("cannot open %s (%s): logging to stderr\n" % (cfg.log_file, error))
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(process)d %(threadName)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(getattr(logging, cfg.log_level.upper(), logging.INFO))
    # asyncssh logs every channel at INFO: only its warnings matter here
    logging.getLogger("asyncssh").setLevel(logging.WARNING)


class Monitor(object):
    """The running daemon."""

    def __init__(self, cfg, host_uuid):
        self.cfg = cfg
        self.host_uuid = host_uuid
        self.loop = asyncio.get_event_loop()
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=cfg.workers)
        self.connector = xapi_link.XapiConnector(cfg.xapi_socket)
        self.stats = xapi_link.WriteStats()
        self.outbox = xapi_link.Outbox(cfg.writers, cfg.write_interval, cfg.write_burst)
        self.manager = manager.Manager(cfg, host_uuid, self.connector, self.executor,
                                       self.outbox, self.stats)
        self.writers = [xapi_link.Writer(self.outbox, i, self.connector, self.stats)
                        for i in range(self.outbox.shards)]
        self.watcher = xapi_link.EventWatcher(
            self.connector, host_uuid,
            lambda update: self.loop.call_soon_threadsafe(self.manager.on_update, update),
            lambda reason: self.loop.call_soon_threadsafe(self.manager.on_xapi_lost, reason))
        self.server = server.RequestServer(self.manager, cfg.socket)
        self.stopped = None
        self.exit_code = 0

    async def run(self):
        self.stopped = asyncio.Event()
        self.loop.set_default_executor(self.executor)
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(signum, self.stop, signum)
        await self.server.start()
        for writer in self.writers:
            writer.start()
        self.watcher.start()
        watchdog = asyncio.ensure_future(self._watchdog())
        log.info("xscontainer-monitor %s started on host %s (pid %d)", __version__,
                 self.host_uuid, os.getpid())
        await self.stopped.wait()
        watchdog.cancel()
        await self._shutdown()
        return self.exit_code

    def stop(self, signum=None):
        if signum is not None:
            log.info("stopping (signal %d)", signum)
        self.stopped.set()

    async def _watchdog(self):
        threads = [self.watcher] + self.writers
        while True:
            await asyncio.sleep(WATCHDOG_PERIOD)
            dead = [t.name for t in threads if not t.is_alive()]
            if dead:
                log.error("thread(s) %s died: exiting for systemd to restart the monitor",
                          ", ".join(dead))
                self.exit_code = 1
                self.stopped.set()
                return

    async def _shutdown(self):
        self.server.close()
        self.manager.mark_all_stale("the monitor was stopped")
        deadline = time.monotonic() + STOP_DRAIN_SECONDS
        while self.outbox.size() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        self.manager.stop_all()
        self.watcher.stopping.set()
        for writer in self.writers:
            writer.stopping.set()
        self.outbox.close()
        await asyncio.sleep(0)
        self.executor.shutdown(wait=False)
        log.info("stopped")


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="xscontainer-monitor",
        description="Keeps the container documents of this host's registered VMs true.")
    ap.add_argument("--config", default=config.CONFIG_FILE,
                    help="settings file (default %(default)s)")
    ap.add_argument("--socket", help="request socket path")
    ap.add_argument("--log-file", help="log file path")
    ap.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")
    ap.add_argument("--xapi-socket", help="XAPI's Unix socket (default: dom0's)")
    ap.add_argument("--host-uuid", help="this host's uuid (default: from the inventory)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="any setting of dom0_plugin/monitor/config.py")
    ap.add_argument("--version", action="version", version=__version__)
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    overrides = {"socket": args.socket, "log_file": args.log_file,
                 "log_level": args.log_level, "xapi_socket": args.xapi_socket,
                 "host_uuid": args.host_uuid}
    for item in args.set:
        name, _, value = item.partition("=")
        overrides[name.strip().replace("-", "_")] = value
    try:
        cfg = config.load(args.config, overrides)
    except ValueError as error:
        sys.stderr.write("xscontainer-monitor: %s\n" % error)
        return 2
    setup_logging(cfg)
    host_uuid = cfg.host_uuid or inventory.this_host_uuid()
    threading.current_thread().name = "loop"
    monitor = Monitor(cfg, host_uuid)
    try:
        return monitor.loop.run_until_complete(monitor.run())
    except Exception:
        log.exception("the monitor failed")
        return 1
