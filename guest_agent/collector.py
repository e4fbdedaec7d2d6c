"""Follows the Docker Engine: its container events, with a full resync at start, after
every reconnect and at a slow period; survives the engine restarting or being absent.

Two threads: one blocks on the event stream and queues the container events; the other
refreshes those containers (one API call for a burst of events), reads them again until
the list agrees with their last event (docker_events.Convergence), resyncs on time, and
reconnects with exponential backoff. Both block while nothing happens.
"""

import logging
import threading
import time

import docker
import requests

from xsc_contract import report_schema as S
from guest_agent.publisher import EMPTY_SNAPSHOT, Snapshot
from xsc_contract import docker_events as events

log = logging.getLogger(__name__)

REFRESH_BY_ID_MAX = 50      # more changed containers than this: list them all
CONVERGE_MAX = 1000         # containers checked until the list caught up with their event
EVENTS_QUEUED_MAX = 10000   # a flood beyond this: list everything once
API_TIMEOUT = 30

# What a lost or absent engine looks like through the SDK.
DOCKER_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException,
                 OSError, ValueError)


def connect(url, timeout=API_TIMEOUT):
    """A Docker API client for ``url`` (API version negotiated with the engine)."""
    return docker.APIClient(base_url=url, version="auto", timeout=timeout)


def reason_of(error):
    text = str(error) or type(error).__name__
    if "No such file" in text or "Connection refused" in text:
        return "the Docker Engine is not running (%s)" % text[:200]
    return text[:300]


class Collector(object):
    """Keeps a Snapshot of the engine; calls ``on_change()`` after every refresh."""

    def __init__(self, url, on_change, resync_seconds=60.0, retry_max_seconds=30.0):
        self.url = url
        self.on_change = on_change
        self.resync_seconds = resync_seconds
        self.retry_max_seconds = retry_max_seconds
        self._cond = threading.Condition()
        self._snapshot = EMPTY_SNAPSHOT
        self._events = []           # (container id, action) read, not yet handled
        self._overflow = False
        self._stream_over = False
        self._stopping = False
        self._stream = None
        self._thread = None
        self.resyncs = 0
        self.connects = 0
        self.settled = threading.Event()    # set once the engine was reached or missed

    # -- public --------------------------------------------------------------------------
    def start(self):
        self._thread = threading.Thread(target=self._run, name="collector", daemon=True)
        self._thread.start()

    def stop(self, timeout=10):
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._close_stream()
        if self._thread is not None:
            self._thread.join(timeout)

    def snapshot(self):
        with self._cond:
            return self._snapshot

    # -- internals --------------------------------------------------------------------------
    def _set(self, snapshot):
        with self._cond:
            self._snapshot = snapshot
        self.settled.set()
        self.on_change()

    def _close_stream(self):
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.close()
            except Exception:   # already closed or broken: nothing left to free
                pass

    def _sleep(self, seconds):
        with self._cond:
            if not self._stopping:
                self._cond.wait(seconds)
            return not self._stopping

    def _run(self):
        backoff = 1.0
        while not self._stopping:
            client = None
            try:
                client = connect(self.url)
                self.connects += 1
                self._follow(client)
                backoff = 1.0
            except DOCKER_ERRORS as error:
                reason = reason_of(error)
                current = self.snapshot()
                if current.docker_up or current.error != reason:
                    log.warning("Docker Engine unreachable: %s; retrying", reason)
                self._set(current._replace(docker_up=False, error=reason))
                if not self._sleep(backoff):
                    break
                backoff = min(backoff * 2, self.retry_max_seconds)
            except Exception:   # a bug must not end the agent's view of Docker
                log.exception("collector error; reconnecting")
                if not self._sleep(backoff):
                    break
                backoff = min(backoff * 2, self.retry_max_seconds)
            finally:
                self._close_stream()
                if client is not None:
                    client.close()

    def _follow(self, client):
        """Resync, then follow events until the stream ends or we stop."""
        with self._cond:
            self._events = []
            self._overflow = False
            self._stream_over = False
        converge = events.Convergence(limit=CONVERGE_MAX)
        # The stream starts before the list, so nothing between the two is missed.
        self._stream = client.events(decode=True, filters={"type": "container"})
        reader = threading.Thread(target=self._read_events, args=(self._stream,),
                                  name="docker-events", daemon=True)
        reader.start()
        try:
            self._resync(client)
            log.info("following the Docker Engine at %s", self.url)
            next_resync = time.monotonic() + self.resync_seconds
            while True:
                with self._cond:
                    while (not self._events and not self._stream_over and not self._stopping
                           and time.monotonic() < _soonest(next_resync, converge.next_due())):
                        self._cond.wait(max(0.0, _soonest(next_resync, converge.next_due())
                                            - time.monotonic()))
                    if self._stopping:
                        return
                    if self._stream_over and not self._events:
                        raise requests.exceptions.ConnectionError(
                            "the Docker event stream ended (engine stopped or restarted)")
                    batch, self._events = self._events, []
                    overflow, self._overflow = self._overflow, False
                dirty = set()
                for container_id, action in batch:
                    converge.event(container_id, action)
                    dirty.add(container_id)
                ids = dirty | converge.due(time.monotonic())
                if (overflow or time.monotonic() >= next_resync
                        or len(ids) > REFRESH_BY_ID_MAX):
                    ids = converge.tracked()
                    marks = converge.marks(ids)
                    found = self._resync(client)
                    next_resync = time.monotonic() + self.resync_seconds
                elif ids:
                    marks = converge.marks(ids)
                    found = self._refresh(client, ids)
                else:
                    continue
                converge.observed(ids, found, time.monotonic(), marks)
        finally:
            self._close_stream()
            reader.join(5)

    def _read_events(self, stream):
        try:
            for event in stream:
                container_id, action = events.container_action(event)
                log.debug("docker event %s %s", action, str(container_id)[:12])
                if action in events.LIST_ACTIONS and container_id is not None:
                    with self._cond:
                        if len(self._events) < EVENTS_QUEUED_MAX:
                            self._events.append((container_id, action))
                        else:
                            self._overflow = True
                        self._cond.notify_all()
        except Exception as error:  # the engine went away mid-stream
            log.debug("event stream ended: %s", error)
        finally:
            with self._cond:
                self._stream_over = True
                self._cond.notify_all()

    def _resync(self, client):
        containers = _by_id(client.containers(all=True))
        info = client.info()
        version = client.version()
        self.resyncs += 1
        self._set(Snapshot(True, "", containers, version, info))
        return containers

    def _refresh(self, client, ids):
        found = _by_id(client.containers(all=True, filters={"id": sorted(ids)}))
        current = self.snapshot()
        containers = dict(current.containers)
        for container_id in ids:
            if container_id in found:
                containers[container_id] = found[container_id]
            else:
                containers.pop(container_id, None)
        self._set(current._replace(docker_up=True, error="", containers=containers))
        return found


def _soonest(when, other):
    return when if other is None else min(when, other)


def _by_id(containers):
    out = {}
    for summary in containers if isinstance(containers, list) else []:
        if isinstance(summary, dict) and S.is_container_id(summary.get("Id")):
            out[summary["Id"]] = summary
    return out
