"""The lifecycle request channel: dom0 writes ``requests/<id>``, the agent answers in
``answers/<id>``.

Off by default: every request is then answered "refused". The config file's allow-list
turns on some of start, stop, restart, pause, unpause, top, inspect, logs; nothing else
can be asked. Each request id is acted on once: a repeated id gets the same answer.
Answers are bounded (report_schema.answer_room()): big results are trimmed to fit.

Docker calls run in worker threads; answers are written by the agent's main thread
(``flush``), which owns the xenstore connection's writes.
"""

import collections
import logging
import queue
import threading
import time

import docker

from xsc_contract import report_schema as S
from guest_agent.collector import DOCKER_ERRORS, connect, reason_of
from xsc_contract.xenstore import XenstoreError

log = logging.getLogger(__name__)

WORKERS = 2
REMEMBERED_IDS = 256            # answers kept in memory for repeated ids
ANSWER_TTL = 120.0              # an answer dom0 did not collect is removed after this
REQUEST_TTL = 300.0             # a request node nobody cleaned up is removed after this
LOGS_READ_LIMIT = 8 * 1024 * 1024

Answer = collections.namedtuple("Answer", "status code reason http_status result")


def refused(code, reason):
    return Answer(S.STATUS_REFUSED, code, reason, 0, None)


def failed(code, reason, http_status=0):
    return Answer(S.STATUS_FAILED, code, reason, http_status, None)


def done(result=None):
    return Answer(S.STATUS_DONE, "", "", 0, result)


class Executor(object):
    """Carries out one request against the Docker Engine; returns an Answer."""

    def __init__(self, url):
        self.url = url
        self._local = threading.local()

    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            client = connect(self.url)
            self._local.client = client
        return client

    def _drop_client(self):
        client = getattr(self._local, "client", None)
        self._local.client = None
        if client is not None:
            client.close()

    def run(self, request):
        try:
            return getattr(self, "_do_" + request.verb)(self._client(), request)
        except docker.errors.NotFound as error:
            return failed(S.CODE_NO_SUCH_CONTAINER, _explanation(error), 404)
        except docker.errors.APIError as error:
            return failed(S.CODE_DOCKER_ERROR, _explanation(error),
                          error.status_code or 500)
        except DOCKER_ERRORS as error:
            self._drop_client()
            return failed(S.CODE_DOCKER_UNAVAILABLE, reason_of(error))

    # -- lifecycle ----------------------------------------------------------------------
    def _do_start(self, api, request):
        api.start(request.target)
        return done()

    def _do_stop(self, api, request):
        grace = request.args.get("grace", 10)
        api.stop(request.target, timeout=grace)
        return done()

    def _do_restart(self, api, request):
        grace = request.args.get("grace", 10)
        api.restart(request.target, timeout=grace)
        return done()

    def _paused_switch(self, api, request, want_paused):
        try:
            (api.pause if want_paused else api.unpause)(request.target)
        except docker.errors.APIError as error:
            # Already so is success: Docker says 409 (pause) or even 500 (unpause, Engine
            # 20.10 "is not paused"); the container's state decides.
            if error.status_code in (409, 500):
                state = api.inspect_container(request.target).get("State") or {}
                if want_paused and state.get("Paused"):
                    return done()
                if not want_paused and state.get("Running") and not state.get("Paused"):
                    return done()
            raise
        return done()

    def _do_pause(self, api, request):
        return self._paused_switch(api, request, True)

    def _do_unpause(self, api, request):
        return self._paused_switch(api, request, False)

    # -- reading --------------------------------------------------------------------------
    def _do_inspect(self, api, request):
        return done(fit_inspect(api.inspect_container(request.target)))

    def _do_top(self, api, request):
        return done(fit_top(api.top(request.target)))

    def _do_logs(self, api, request):
        details = api.inspect_container(request.target)
        tty = bool((details.get("Config") or {}).get("Tty"))
        params = {"stdout": 1, "stderr": 1, "tail": str(request.args.get("tail", "all"))}
        if request.args.get("since") is not None:
            params["since"] = request.args["since"]
        url = api._url("/containers/{0}/logs", details["Id"])
        response = api.get(url, params=params, stream=True, timeout=api.timeout)
        try:
            api._raise_for_status(response)
            data = bytearray()
            for piece in response.iter_content(65536):
                data.extend(piece)
                if len(data) > LOGS_READ_LIMIT:
                    del data[:len(data) - LOGS_READ_LIMIT]
        finally:
            response.close()
        frames = [("stdout", bytes(data))] if tty else demultiplex(bytes(data))
        limit = request.args.get("max_bytes", S.LOGS_BYTES_MAX)
        return done(fit_logs(frames, limit))


def _explanation(error):
    text = getattr(error, "explanation", None) or str(error)
    return str(text)[:S.REASON_MAX]


def demultiplex(data):
    """Docker's multiplexed log stream -> [(stream name, bytes)]."""
    names = {0: "stdout", 1: "stdout", 2: "stderr"}
    frames = []
    pos = 0
    while pos + 8 <= len(data):
        kind, size = data[pos], int.from_bytes(data[pos + 4:pos + 8], "big")
        payload = data[pos + 8:pos + 8 + size]
        pos += 8 + size
        name = names.get(kind, "stdout")
        if frames and frames[-1][0] == name:
            frames[-1] = (name, frames[-1][1] + payload)
        else:
            frames.append((name, payload))
    return frames


# -- bounding results ------------------------------------------------------------------------

def _size(value):
    return len(S.dumps(value))


# Inspect keys dropped first when the result is too big (least useful first).
_INSPECT_DROP = ("GraphDriver", "Mounts", "NetworkSettings", "HostConfig", "ExecIDs",
                 "LogPath", "ResolvConfPath", "HostnamePath", "HostsPath", "AppArmorProfile",
                 "MountLabel", "ProcessLabel", "Args", "Platform", "Driver")


def fit_inspect(details):
    """Docker's inspect answer made to fit in one answer (least useful parts go first)."""
    room = S.answer_room()
    details = dict(details)
    for key in _INSPECT_DROP:
        if _size(details) <= room:
            return details
        details.pop(key, None)
    config = dict(details.get("Config") or {})
    for key in ("Env", "Labels", "Healthcheck", "Volumes", "OnBuild", "ExposedPorts"):
        if _size(details) <= room:
            return details
        config.pop(key, None)
        details["Config"] = config
    while _size(details) > room and details:
        biggest = max(details, key=lambda k: _size(details[k]))
        if biggest in ("Id", "Name", "State"):
            details[biggest] = details[biggest] if biggest != "State" else {
                k: v for k, v in details["State"].items() if k in ("Status", "Running",
                                                                    "Paused", "ExitCode")}
            if _size(details) > room:
                details.pop("Config", None)
            break
        details.pop(biggest)
    return details


def fit_top(top):
    """Docker's top answer with as many rows (and as much of each field) as fit."""
    titles = [str(t)[:64] for t in (top.get("Titles") or [])[:32]]
    rows = []
    used = _size({"Titles": titles, "Processes": []}) + 16
    for row in top.get("Processes") or []:
        row = [str(cell)[:512] for cell in (row or [])[:32]]
        cost = _size(row) + 1
        if used + cost > S.answer_room():
            break
        used += cost
        rows.append(row)
    return {"Titles": titles, "Processes": rows}


def fit_logs(frames, limit):
    """{"frames": [[stream, text]...], "truncated": bool}: the newest output, at most
    ``limit`` bytes and within one answer once escaped."""
    total = sum(len(data) for _, data in frames)
    keep = min(limit, S.LOGS_BYTES_MAX)
    truncated = total > keep
    while True:
        out, budget = [], keep
        for name, data in reversed(frames):
            if budget <= 0:
                break
            piece = data[-budget:]
            budget -= len(piece)
            out.append([name, piece.decode("utf-8", "replace")])
        out.reverse()
        result = {"frames": out, "truncated": truncated}
        if _size(result) <= S.answer_room() or keep < 64:
            return result
        keep //= 2          # escapes made it too big: keep less
        truncated = True


# -- the channel --------------------------------------------------------------------------------

class RequestChannel(object):
    """Watches ``requests/``, runs what the allow-list permits, writes answers."""

    def __init__(self, xs, allowed_verbs, executor, wake, clock=time.monotonic):
        self.xs = xs
        self.lay = S.layout()
        self.allowed = frozenset(allowed_verbs)
        self.executor = executor
        self.wake = wake
        self.clock = clock
        self.token = "xscng-requests"
        self._todo = queue.Queue()
        self._done = queue.Queue()
        self._workers = []
        self._remembered = collections.OrderedDict()    # id -> Answer
        self._running = set()
        self._seen_requests = {}                        # id -> first sighting
        self._answered = {}                             # id -> time written
        self.executed = 0                               # actions carried out

    def start(self):
        for index in range(WORKERS):
            worker = threading.Thread(target=self._work, name="request-%d" % index,
                                      daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self):
        for _ in self._workers:
            self._todo.put(None)
        for worker in self._workers:
            worker.join(5)

    def attach(self, xs):
        """Use a (new) xenstore connection: watch requests/ on it."""
        self.xs = xs
        self._answered = {}
        try:
            for request_id in xs.directory(self.lay.answers):
                self._answered[request_id] = self.clock()
        except XenstoreError:
            pass
        xs.watch(self.lay.requests, self.token)

    def _work(self):
        while True:
            item = self._todo.get()
            if item is None:
                return
            request_id, request = item
            try:
                answer = self.executor.run(request)
            except Exception as error:   # a bug must not kill the worker
                log.exception("request %s (%s) failed", request_id, request.verb)
                answer = failed(S.CODE_INTERNAL, "agent error: %s" % type(error).__name__)
            self.executed += 1
            self._done.put((request_id, answer))
            self.wake()

    # -- main thread ---------------------------------------------------------------------------
    def scan(self):
        """Look at requests/: answer new ones, re-answer repeated ids."""
        try:
            ids = self.xs.directory(self.lay.requests)
        except XenstoreError as problem:
            if problem.code == "E2BIG":
                log.warning("requests/ is too big to list: clearing it")
                self.xs.rm(self.lay.requests)
            elif problem.code != "ENOENT":
                raise
            return
        now = self.clock()
        present = set(ids)
        pending = 0
        for request_id in ids:
            self._seen_requests.setdefault(request_id, now)
            if request_id in self._running:
                continue
            if not S.is_request_id(request_id):
                self._drop_request(request_id)
                continue
            if request_id in self._remembered:
                # Acted on already: the same answer again, never a second action.
                if not self._answer_exists(request_id):
                    self._write(request_id, self._remembered[request_id])
                continue
            if request_id in self._answered:
                continue    # answered by an earlier run of the agent
            pending += 1
            self._consider(request_id, pending)
        for request_id in list(self._seen_requests):
            if request_id not in present:
                del self._seen_requests[request_id]
        for request_id in list(self._answered):
            if request_id not in present:
                self._remove_answer(request_id)     # dom0 collected it

    def _answer_exists(self, request_id):
        try:
            return bool(self.xs.read(S.answer_path(self.lay, request_id)))
        except XenstoreError as problem:
            if problem.code == "ENOENT":
                return False
            raise

    def _consider(self, request_id, pending):
        path = S.request_path(self.lay, request_id)
        try:
            raw = self.xs.read(path)
        except XenstoreError as problem:
            if problem.code == "ENOENT":
                return
            raise
        if not raw:
            return      # created, value not written yet: its write fires the watch again
        try:
            request = S.decode_request(raw, path)
        except S.ReportError as problem:
            self._answer(request_id, refused(S.CODE_BAD_REQUEST, problem.reason))
            return
        if not self.allowed:
            self._answer(request_id, refused(
                S.CODE_DISABLED, "the request channel is off in this guest (enable it in "
                "the agent's config file: [requests] allow = ...)"))
        elif request.verb not in self.allowed:
            self._answer(request_id, refused(
                S.CODE_VERB_NOT_ALLOWED, "verb %s is not in this guest's allow-list (%s)"
                % (request.verb, ", ".join(sorted(self.allowed)))))
        elif len(self._running) + pending > S.MAX_PENDING_REQUESTS:
            self._answer(request_id, refused(S.CODE_BUSY, "too many requests pending"))
        else:
            self._running.add(request_id)
            self._todo.put((request_id, request))

    def _answer(self, request_id, answer):
        self._remembered[request_id] = answer
        while len(self._remembered) > REMEMBERED_IDS:
            self._remembered.popitem(last=False)
        self._write(request_id, answer)

    def _write(self, request_id, answer):
        try:
            meta, chunks = S.encode_answer(answer.status, answer.code, answer.reason,
                                           answer.http_status, answer.result)
        except ValueError as problem:
            meta, chunks = S.encode_answer(S.STATUS_FAILED, S.CODE_INTERNAL,
                                           "answer too large: %s" % problem)
        path = S.answer_path(self.lay, request_id)
        self._make_room()
        for _ in range(5):
            tx = self.xs.transaction_start()
            try:
                for index, chunk in enumerate(chunks):
                    self.xs.write("%s/%d" % (path, index), chunk, tx)
                self.xs.write(path, meta, tx)
            except XenstoreError as problem:
                self.xs.transaction_end(tx, False)
                log.warning("cannot answer request %s: %s", request_id, problem)
                return
            if self.xs.transaction_end(tx, True):
                self._answered[request_id] = self.clock()
                return

    def _make_room(self):
        """Keep at most MAX_KEPT_ANSWERS answers: drop the oldest uncollected ones."""
        while len(self._answered) >= S.MAX_KEPT_ANSWERS:
            oldest = min(self._answered, key=self._answered.get)
            self._remove_answer(oldest)

    def _remove_answer(self, request_id):
        self._answered.pop(request_id, None)
        try:
            self.xs.rm(S.answer_path(self.lay, request_id))
        except XenstoreError as problem:
            if problem.code != "ENOENT":
                raise

    def _drop_request(self, request_id):
        try:
            self.xs.rm("%s/%s" % (self.lay.requests, request_id))
        except XenstoreError as problem:
            if problem.code not in ("ENOENT", "EINVAL"):
                raise
        self._seen_requests.pop(request_id, None)

    def flush(self):
        """Write the answers the workers finished."""
        while True:
            try:
                request_id, answer = self._done.get_nowait()
            except queue.Empty:
                return
            self._running.discard(request_id)
            self._answer(request_id, answer)

    def collect_garbage(self):
        """Remove answers dom0 did not collect and requests nobody cleaned up."""
        now = self.clock()
        for request_id, written in list(self._answered.items()):
            if now - written > ANSWER_TTL:
                self._remove_answer(request_id)
        for request_id, seen in list(self._seen_requests.items()):
            if now - seen > REQUEST_TTL and request_id not in self._running:
                self._drop_request(request_id)
