"""Follows the Docker Engine: its container events, with a full resync at start, after
every reconnect and at a slow period; survives the engine restarting or being absent.

Two threads: one blocks on the event stream and notes which containers changed; the
other refreshes those containers (one API call for a burst of events), resyncs on time,
and reconnects with exponential backoff. Both block while nothing happens.
"""

import logging
import threading
import time

import docker
import requests

from guest_agent import report_schema as S
from guest_agent.publisher import EMPTY_SNAPSHOT, Snapshot

log = logging.getLogger(__name__)

# Container events that can change what the report shows (exec_*, attach, top... can't).
STATE_ACTIONS = frozenset(("create", "start", "restart", "stop", "die", "kill", "pause",
                           "unpause", "destroy", "rename", "update", "oom"))
REFRESH_BY_ID_MAX = 50      # more changed containers than this: list them all
RECHECK_SECONDS = 0.1
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
        self._dirty = set()
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
            self._dirty.clear()
            self._stream_over = False
        # The stream starts before the list, so nothing between the two is missed.
        self._stream = client.events(decode=True, filters={"type": "container"})
        reader = threading.Thread(target=self._read_events, args=(self._stream,),
                                  name="docker-events", daemon=True)
        reader.start()
        try:
            self._resync(client)
            log.info("following the Docker Engine at %s", self.url)
            next_resync = time.monotonic() + self.resync_seconds
            recheck, recheck_at = set(), None
            while True:
                with self._cond:
                    while (not self._dirty and not self._stream_over and not self._stopping
                           and time.monotonic() < min(next_resync, recheck_at or next_resync)):
                        self._cond.wait(max(0.0, min(next_resync, recheck_at or next_resync)
                                            - time.monotonic()))
                    if self._stopping:
                        return
                    if self._stream_over and not self._dirty:
                        raise requests.exceptions.ConnectionError(
                            "the Docker event stream ended (engine stopped or restarted)")
                    dirty, self._dirty = self._dirty, set()
                now = time.monotonic()
                due = set()
                if recheck_at is not None and now >= recheck_at:
                    due, recheck, recheck_at = recheck, set(), None
                if now >= next_resync or len(dirty) > REFRESH_BY_ID_MAX:
                    self._resync(client)
                    next_resync = time.monotonic() + self.resync_seconds
                    recheck, recheck_at = set(), None
                elif dirty or due:
                    self._refresh(client, dirty | due)
                    if dirty:
                        # Docker sends some events (pause...) before the state its list
                        # shows is updated: look at these containers once more shortly.
                        recheck |= dirty
                        recheck_at = recheck_at or time.monotonic() + RECHECK_SECONDS
        finally:
            self._close_stream()
            reader.join(5)

    def _read_events(self, stream):
        try:
            for event in stream:
                if not isinstance(event, dict):
                    continue
                action = str(event.get("Action") or event.get("status") or "")
                actor = event.get("Actor") if isinstance(event.get("Actor"), dict) else {}
                container_id = actor.get("ID") or event.get("id")
                log.debug("docker event %s %s", action, str(container_id)[:12])
                if action.split(":")[0] in STATE_ACTIONS and S.is_container_id(container_id):
                    with self._cond:
                        self._dirty.add(container_id)
                        self._cond.notify_all()
        except Exception as error:  # the engine went away mid-stream
            log.debug("event stream ended: %s", error)
        finally:
            with self._cond:
                self._stream_over = True
                self._cond.notify_all()

    def _resync(self, client):
        containers = client.containers(all=True)
        info = client.info()
        version = client.version()
        self.resyncs += 1
        self._set(Snapshot(True, "", _by_id(containers), version, info))

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


def _by_id(containers):
    out = {}
    for summary in containers if isinstance(containers, list) else []:
        if isinstance(summary, dict) and S.is_container_id(summary.get("Id")):
            out[summary["Id"]] = summary
    return out
