"""The container list of one VM, kept between Docker events.

Only what docker_ps shows is kept, with every field capped, so a VM with 10 000
containers or with huge labels costs a bounded amount of dom0 memory.
"""
from dom0_plugin import validate

TEXT_MAX = 1024
NAMES_MAX = 8
PORTS_MAX = 100
LABELS_MAX = 100


def _text(value, limit=TEXT_MAX):
    if isinstance(value, str):
        return value[:limit]
    return None


def _int(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if value != value or abs(value) > 2 ** 62:
        return None
    return int(value)


def _port(port):
    if not isinstance(port, dict):
        return None
    out = {}
    for key in ("IP", "PrivatePort", "PublicPort", "Type"):
        value = port.get(key)
        if isinstance(value, str):
            out[key] = value[:64]
        elif _int(value) is not None:
            out[key] = _int(value)
    return out


def slim(summary):
    """The fields of one ``/containers/json`` entry that docker_ps uses, capped; None when
    the entry has no valid full id."""
    if not isinstance(summary, dict) or not validate.is_full_id(summary.get("Id")):
        return None
    names = summary.get("Names")
    if isinstance(names, str):
        names = [names]
    names = [n[:256] for n in names[:NAMES_MAX] if isinstance(n, str)] \
        if isinstance(names, list) else []
    ports = summary.get("Ports")
    ports = [p for p in (_port(x) for x in ports[:PORTS_MAX]) if p] \
        if isinstance(ports, list) else []
    labels = summary.get("Labels")
    if isinstance(labels, dict):
        labels = dict((str(k)[:256], _text(v) or "") for k, v in
                      list(labels.items())[:LABELS_MAX])
    else:
        labels = {}
    return {"Id": summary["Id"], "Names": names, "Image": _text(summary.get("Image")),
            "Command": _text(summary.get("Command")), "Created": _int(summary.get("Created")),
            "State": _text(summary.get("State"), 32), "Status": _text(summary.get("Status"), 200),
            "Ports": ports, "Labels": labels}


def _order(entry):
    # Docker lists the newest first; equal times in a stable order
    return (-(entry.get("Created") or 0), entry["Id"])


class ContainerTable(object):
    """Container id -> slim summary, at most ``limit`` of them (the newest kept)."""

    def __init__(self, limit=10000):
        self.limit = limit
        self.items = {}
        self.dropped = 0      # containers left out by the limit at the last update

    def __len__(self):
        return len(self.items)

    def replace(self, summaries):
        """The whole list (answer of ``GET /containers/json?all=1``)."""
        items = {}
        for summary in summaries if isinstance(summaries, list) else []:
            entry = slim(summary)
            if entry is not None:
                items[entry["Id"]] = entry
        self.items = items
        self._trim()

    def update(self, ids, summaries):
        """The containers ``ids`` were re-read: ``summaries`` holds those that still exist."""
        for container_id in ids:
            self.items.pop(container_id, None)
        wanted = set(ids)
        for summary in summaries if isinstance(summaries, list) else []:
            entry = slim(summary)
            if entry is not None and entry["Id"] in wanted:
                self.items[entry["Id"]] = entry
        self._trim()

    def _trim(self):
        self.dropped = max(0, len(self.items) - self.limit)
        if self.dropped:
            keep = sorted(self.items.values(), key=_order)[:self.limit]
            self.items = dict((e["Id"], e) for e in keep)

    def ordered(self):
        """The summaries in Docker's order (newest first)."""
        return sorted(self.items.values(), key=_order)
