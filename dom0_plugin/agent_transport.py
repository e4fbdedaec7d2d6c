"""The agent transport: a VM's Docker state and lifecycle calls through xenstore.

The guest agent (guest_agent/) writes a report under /local/domain/<domid>/data/
xscontainer; dom0 reads it here and answers like dom0_plugin.docker_api.DockerClient
does over SSH: same method names, same result shapes, same error classes. Lifecycle
calls, inspect, top and logs go through the request channel (requests/<id> written by
dom0, answers/<id> by the guest). Layout and checks: xsc_contract.report_schema and
docs/guest-report.md.

Everything the guest wrote is hostile: reads are bounded in number and size, and any
problem becomes an error with a reason (report_schema.ReportError, or an XscError from
AgentDocker), never a crash or an unbounded wait.

Python 3.6, stdlib + xsc_contract.xenstore + xsc_contract.report_schema.
"""

import binascii
import collections
import os
import time

from dom0_plugin import constants as C
from dom0_plugin import validate
from dom0_plugin.docker_api import (DEFAULT_TIMEOUT, LOGS_MAX_BYTES, LOGS_MAX_BYTES_LIMIT,
                                    STOP_GRACE_SECONDS, Logs, parse_api_version)
from dom0_plugin.errors import (DockerError, DockerUnavailable, NoSuchContainer,
                                VmUnreachable, XscError)
from xsc_contract import report_schema as S
from xsc_contract.xenstore import Client, XenstoreError, default_path

# Proposed for constants.py (params in brackets):
ERR_AGENT_REFUSED = C.ERR_AGENT_REFUSED
ERR_AGENT_INVALID = C.ERR_AGENT_INVALID

READ_TRIES = 3

Report = collections.namedtuple("Report", "agent state version info containers")
Report.__doc__ = """A validated guest report: AgentInfo, State, the version and info
dicts (Docker's keys) and a tuple of report_schema.Container."""


class NoReport(S.ReportError):
    """The guest has no agent report (no agent installed, or not started yet)."""


def _read(xs, path, missing_ok=False):
    """A node's value (bytes); None when absent and ``missing_ok``."""
    try:
        return xs.read(path)
    except XenstoreError as problem:
        if problem.code == "ENOENT" and missing_ok:
            return None
        if problem.code in ("ENOENT", "E2BIG", "EINVAL", "EACCES"):
            raise S.ReportError("cannot read it (%s)" % problem.code, path)
        raise


def _directory(xs, path, most):
    try:
        names = xs.directory(path)
    except XenstoreError as problem:
        if problem.code == "ENOENT":
            return []
        if problem.code in ("E2BIG", "EINVAL", "EACCES"):
            raise S.ReportError("cannot list it (%s): too many or bad entries"
                                % problem.code, path)
        raise
    if len(names) > most:
        raise S.ReportError("%d entries (at most %d)" % (len(names), most), path)
    return names


def agent_present(xs, domid):
    """True when the guest advertises a working agent of a schema this dom0 reads."""
    lay = S.layout(domid)
    try:
        raw = _read(xs, lay.agent, missing_ok=True)
        if raw is None:
            return False
        S.decode_agent(raw, lay.agent)
        return True
    except S.ReportError:
        return False


def _read_containers(xs, lay):
    pages = _directory(xs, lay.containers, S.MAX_PAGES)
    containers = []
    seen = set()
    for name in pages:
        page = S.check_page_name(name, lay.containers)
        path = S.page_path(lay, page)
        ids = _directory(xs, path, S.PAGE_SIZE)
        if len(containers) + len(ids) > S.MAX_CONTAINERS:
            raise S.ReportError("more than %d containers" % S.MAX_CONTAINERS, lay.containers)
        for container_id in ids:
            S.check_container_id(container_id, path)
            if container_id in seen:
                raise S.ReportError("container %s listed twice" % container_id[:12], path)
            seen.add(container_id)
            node = S.container_path(lay, page, container_id)
            containers.append(S.decode_container(container_id, _read(xs, node), node))
    return containers


def read_report(xs, domid):
    """The guest's validated Report. Raises NoReport when there is none, ReportError
    (with a reason) when it is invalid or changes too fast to be read consistently,
    XenstoreError when dom0's own xenstore connection fails.

    At most 4 + MAX_PAGES + MAX_CONTAINERS reads of at most 4096 bytes each, tried
    READ_TRIES times: the state node (written last in every batch, its seq grows) is
    read before and after; a report that changed meanwhile is read again.
    """
    lay = S.layout(domid)
    for _ in range(READ_TRIES):
        raw_agent = _read(xs, lay.agent, missing_ok=True)
        if raw_agent is None:
            raise NoReport("no guest agent report in this VM", lay.agent)
        agent = S.decode_agent(raw_agent, lay.agent)
        before = _read(xs, lay.state, missing_ok=True)
        if before is None:
            raise S.ReportError("the agent wrote no state yet", lay.state)
        version = S.decode_version(_read(xs, lay.version), lay.version)
        info = S.decode_info(_read(xs, lay.info), lay.info)
        containers = _read_containers(xs, lay)
        after = _read(xs, lay.state, missing_ok=True)
        if before == after:
            break
    else:
        raise S.ReportError("the report changed during each of %d reads: it changes too "
                            "fast to be read" % READ_TRIES, lay.state)
    state = S.decode_state(before, lay.state)
    if state.count != len(containers):
        raise S.ReportError("state says %d containers, %d are listed"
                            % (state.count, len(containers)), lay.state)
    containers.sort(key=lambda c: (-c.created, c.id))    # Docker's order: newest first
    return Report(agent, state, version, info, tuple(containers))


def _status_text(container):
    if container.state in ("running",):
        return "Up"
    if container.state == "paused":
        return "Up (Paused)"
    if container.state == "restarting":
        return "Restarting"
    if container.state == "created":
        return "Created"
    if container.state == "removing":
        return "Removing"
    if container.state == "dead":
        return "Dead"
    return "Exited (%d)" % container.exit_code


def container_shape(container):
    """One report Container as an item of Docker's ``GET /containers/json?all=1``."""
    return {"Id": container.id, "Names": list(container.names), "Image": container.image,
            "Command": container.command, "Created": container.created,
            "State": container.state, "Status": _status_text(container),
            "Ports": [dict(p) for p in container.ports], "Labels": dict(container.labels)}


def to_docker_shapes(report):
    """(containers, info, version) shaped like Docker's ``/containers/json?all=1``,
    ``/info`` and ``/version`` answers, for dom0_plugin.documents."""
    return ([container_shape(c) for c in report.containers], dict(report.info),
            dict(report.version))


def watch_path(domid):
    """The node to watch for report changes: the state node is written in every batch."""
    return S.layout(domid).state


def _new_request_id():
    return binascii.hexlify(os.urandom(16)).decode("ascii")


class AgentDocker(object):
    """DockerClient's interface for a VM whose guest agent reports through xenstore.

    ``xs``: a xsc_contract.xenstore.Client on dom0's xenstored (None: open one, closed
    by close()); ``domid``: the VM's domain id; ``vm_uuid`` names it in errors;
    ``timeout``: seconds to wait for an answer to a request.
    """

    def __init__(self, xs, domid, vm_uuid, timeout=DEFAULT_TIMEOUT):
        self._own_xs = xs is None
        self.xs = Client(default_path()) if xs is None else xs
        self.domid = domid
        self.vm = vm_uuid
        self.timeout = timeout
        self.lay = S.layout(domid)
        self.api_version = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Close the xenstore connection when this object opened it."""
        if self._own_xs:
            self.xs.close()

    # -- the report -------------------------------------------------------------------------
    def report(self):
        """The guest's Report, or the XscError that says why there is none."""
        try:
            return read_report(self.xs, self.domid)
        except NoReport as problem:
            raise VmUnreachable(self.vm, "no xscontainer guest agent reports in this VM "
                                "(%s)" % problem.reason)
        except S.ReportError as problem:
            raise XscError(ERR_AGENT_INVALID, [self.vm, str(problem)])
        except XenstoreError as problem:
            raise VmUnreachable(self.vm, "xenstore: %s" % problem)

    def _live_report(self):
        report = self.report()
        if report.state.status != S.AGENT_RUNNING:
            raise VmUnreachable(self.vm, "the guest agent is stopped")
        if report.state.docker != S.DOCKER_UP:
            raise DockerUnavailable(self.vm, validate.guest_text(report.state.error, 300)
                                    or "the guest agent cannot reach Docker")
        return report

    def version(self):
        """Docker's /version fields, from the report."""
        version = dict(self._live_report().version)
        if self.api_version is None:
            self.api_version = parse_api_version(version.get("ApiVersion"))
        return version

    def info(self):
        """Docker's /info fields, from the report."""
        return dict(self._live_report().info)

    def ps(self, all=True):
        """Docker's /containers/json items, from the report (running ones unless all)."""
        containers = to_docker_shapes(self._live_report())[0]
        if not all:
            containers = [c for c in containers
                          if c["State"] in ("running", "paused", "restarting")]
        return containers

    def resolve(self, ref):
        """The full id of the container named by a name, an id prefix or a full id."""
        ref = validate.container_ref(ref)
        report = self._live_report()
        for container in report.containers:
            if container.id == ref:
                return container.id
        for container in report.containers:
            if any(name.lstrip("/") == ref for name in container.names):
                return container.id
        matches = [c.id for c in report.containers if c.id.startswith(ref)]
        if len(matches) > 1:
            raise DockerError(500, "multiple IDs found with provided prefix: " + ref)
        if matches:
            return matches[0]
        if "inspect" in report.agent.verbs:     # the report may lag: ask the guest
            return self.inspect(ref)["Id"]
        raise NoSuchContainer(self.vm, ref)

    # -- requests ----------------------------------------------------------------------------
    def inspect(self, ref):
        """Docker's ``GET /containers/{ref}/json`` (least useful parts dropped when it
        does not fit in one answer)."""
        result = self._request("inspect", ref)
        if not isinstance(result, dict) or not validate.is_full_id(result.get("Id")):
            raise XscError(ERR_AGENT_INVALID, [self.vm, "inspect answer without a valid Id"])
        return result

    def top(self, ref):
        """Docker's ``GET /containers/{ref}/top``: {"Titles": [...], "Processes": [...]}."""
        result = self._request("top", ref)
        titles = result.get("Titles") if isinstance(result, dict) else None
        rows = result.get("Processes") if isinstance(result, dict) else None
        if (not isinstance(titles, list) or not isinstance(rows, list)
                or not all(isinstance(t, str) for t in titles)
                or not all(isinstance(r, list) and all(isinstance(c, str) for c in r)
                           for r in rows)):
            raise XscError(ERR_AGENT_INVALID, [self.vm, "top answer is not Titles and "
                                                        "Processes lists of strings"])
        return {"Titles": titles, "Processes": rows}

    def logs(self, ref, tail="all", since=None, max_bytes=LOGS_MAX_BYTES):
        """The container's output (a Logs): at most ``max_bytes`` and at most what one
        answer carries (report_schema.LOGS_BYTES_MAX); older output is left out."""
        tail = validate.logs_tail(tail)
        since = validate.logs_since(since)
        if (isinstance(max_bytes, bool) or not isinstance(max_bytes, int)
                or not 0 < max_bytes <= LOGS_MAX_BYTES_LIMIT):
            raise validate.InvalidArgument(
                "max_bytes", "must be between 1 and {0}".format(LOGS_MAX_BYTES_LIMIT))
        args = {"tail": tail, "since": since,
                "max_bytes": min(max_bytes, S.LOGS_BYTES_MAX)}
        result = self._request("logs", ref, args)
        frames = result.get("frames") if isinstance(result, dict) else None
        truncated = result.get("truncated") if isinstance(result, dict) else None
        if (not isinstance(frames, list) or not isinstance(truncated, bool)
                or not all(isinstance(f, list) and len(f) == 2
                           and f[0] in ("stdout", "stderr") and isinstance(f[1], str)
                           for f in frames)):
            raise XscError(ERR_AGENT_INVALID, [self.vm, "logs answer is malformed"])
        return Logs([(stream, text) for stream, text in frames], truncated)

    def stats(self, ref, one_shot=True):
        raise XscError(ERR_AGENT_REFUSED, [self.vm, "stats", "resource statistics are "
                                           "not available in agent mode"])

    def events(self, *args, **kwargs):
        raise XscError(ERR_AGENT_REFUSED, [self.vm, "events", "agent mode has no Docker "
                                           "event stream: watch the report (watch_path)"])

    def start(self, ref):
        """Start the container (already running: success)."""
        self._request("start", ref)

    def stop(self, ref, grace=None):
        """Stop the container, killing it after ``grace`` seconds (already stopped: ok)."""
        grace = STOP_GRACE_SECONDS if grace is None else int(grace)
        self._request("stop", ref, {"grace": grace}, self.timeout + grace)

    def restart(self, ref, grace=None):
        """Restart the container (stop with ``grace`` seconds, then start)."""
        grace = STOP_GRACE_SECONDS if grace is None else int(grace)
        self._request("restart", ref, {"grace": grace}, self.timeout + grace)

    def pause(self, ref):
        """Pause the container's processes (already paused: success)."""
        self._request("pause", ref)

    def unpause(self, ref):
        """Resume a paused container (already running and not paused: success)."""
        self._request("unpause", ref)

    def _request(self, verb, ref, args=None, timeout=None):
        """Ask the guest agent; returns the result of a done answer or raises."""
        ref = validate.container_ref(ref)
        timeout = self.timeout if timeout is None else timeout
        self._check_agent()
        request_id = _new_request_id()
        request = S.request_path(self.lay, request_id)
        answer = S.answer_path(self.lay, request_id)
        token = "xscng-answer-" + request_id
        value = S.encode_request(verb, ref, dict((k, v) for k, v in (args or {}).items()
                                                  if v is not None))
        try:
            self.xs.watch(answer, token)
        except XenstoreError as problem:
            raise VmUnreachable(self.vm, "xenstore: %s" % problem)
        try:
            try:
                self.xs.write(request, value)
            except XenstoreError as problem:
                raise VmUnreachable(self.vm, "cannot write the %s request into the guest's "
                                    "xenstore tree (%s)" % (verb, problem.code))
            deadline = time.monotonic() + timeout
            while True:
                found = self._read_answer(answer)
                if found is not None:
                    return self._outcome(verb, ref, *found)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise VmUnreachable(self.vm, "the guest agent did not answer the %s "
                                        "request within %d s" % (verb, round(timeout)))
                self.xs.wait_event(remaining, token=token)
        except XenstoreError as problem:
            raise VmUnreachable(self.vm, "xenstore: %s" % problem)
        finally:
            self._clean_up(request, answer, token)

    def _check_agent(self):
        """Fail at once when no agent can answer (none, or it said it stopped)."""
        try:
            raw = _read(self.xs, self.lay.agent, missing_ok=True)
            if raw is None:
                raise VmUnreachable(self.vm, "no xscontainer guest agent reports in this VM")
            S.decode_agent(raw, self.lay.agent)
            raw_state = _read(self.xs, self.lay.state, missing_ok=True)
            if raw_state is not None and \
                    S.decode_state(raw_state, self.lay.state).status != S.AGENT_RUNNING:
                raise VmUnreachable(self.vm, "the guest agent is stopped")
        except S.ReportError as problem:
            raise XscError(ERR_AGENT_INVALID, [self.vm, str(problem)])
        except XenstoreError as problem:
            raise VmUnreachable(self.vm, "xenstore: %s" % problem)

    def _read_answer(self, path):
        """(AnswerMeta, result) once the answer is complete, else None."""
        try:
            raw = _read(self.xs, path, missing_ok=True)
            if not raw:
                return None     # not there yet (or its parent made before its value)
            meta = S.decode_answer_meta(raw, path)
            chunks = [_read(self.xs, "%s/%d" % (path, index)) for index in range(meta.chunks)]
            return meta, S.decode_answer_result(chunks, path)
        except S.ReportError as problem:
            raise XscError(ERR_AGENT_INVALID, [self.vm, str(problem)])

    def _outcome(self, verb, ref, meta, result):
        reason = validate.guest_text(meta.reason, S.REASON_MAX)
        if meta.status == S.STATUS_DONE:
            return result
        if meta.status == S.STATUS_REFUSED:
            raise XscError(ERR_AGENT_REFUSED, [self.vm, verb, reason or meta.code])
        if meta.code == S.CODE_NO_SUCH_CONTAINER:
            raise NoSuchContainer(self.vm, ref)
        if meta.code == S.CODE_DOCKER_UNAVAILABLE:
            raise DockerUnavailable(self.vm, reason or "the guest agent cannot reach Docker")
        if meta.code == S.CODE_DOCKER_ERROR:
            raise DockerError(meta.http_status or 500, reason or "(no message)")
        raise DockerError(500, "guest agent: %s" % (reason or meta.code))

    def _clean_up(self, request, answer, token):
        for action in (lambda: self.xs.unwatch(answer, token),
                       lambda: self.xs.rm(request), lambda: self.xs.rm(answer)):
            try:
                action()
            except XenstoreError:   # already gone, or the connection is: nothing to undo
                pass
