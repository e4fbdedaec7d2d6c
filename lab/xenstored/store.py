"""The xenstore tree: nodes, permissions, quotas, and the operations on them.

Nodes are immutable: every change puts a new ``Node`` object in the path -> node map.
That makes a transaction's snapshot a shallow copy of the map, and conflict detection a
matter of object identity (did the node we saw at this path get replaced?).
"""
import re

from .protocol import XsError

ROOT = "/"
SPECIAL_PATHS = ("@introduceDomain", "@releaseDomain")

VALUE_MAX = 2048      # oxenstored quota-maxsize: E2BIG past it (for dom0 too)
NODE_QUOTA = 1000     # oxenstored quota-maxent: nodes owned by one guest, EQUOTA past it

PERM_CHARS = "nrwb"
_PATH_CHARS = re.compile(r"[A-Za-z0-9\-/_@]+\Z")


class Node(object):
    __slots__ = ("value", "perms", "children", "gen")

    def __init__(self, value, perms, children, gen):
        self.value = value        # bytes
        self.perms = perms        # ((owner, other), (domid, perm), ...)
        self.children = children  # tuple of child names, in creation order
        self.gen = gen            # generation count (DIRECTORY_PART)


def valid_chars(path):
    return bool(_PATH_CHARS.match(path))


def parent_of(path):
    if path == ROOT:
        return None
    i = path.rfind("/")
    return path[:i] if i > 0 else ROOT


def basename(path):
    return path[path.rfind("/") + 1:]


def join(path, name):
    return "/" + name if path == ROOT else path + "/" + name


def ancestors_and_self(path):
    """'/a/b' -> ['/', '/a', '/a/b']"""
    out = [ROOT]
    if path == ROOT:
        return out
    i = path.find("/", 1)
    while i != -1:
        out.append(path[:i])
        i = path.find("/", i + 1)
    out.append(path)
    return out


# ------------------------------------------------------------------ permissions

def parse_perms(strings):
    """['b0', 'r5'] -> ((0, 'b'), (5, 'r')). EINVAL on anything else."""
    if not strings:
        raise XsError("EINVAL", "no permissions")
    out = []
    for s in strings:
        if len(s) < 2 or s[0] not in PERM_CHARS or not s[1:].isdigit() or not s[1:].isascii():
            raise XsError("EINVAL", "bad permission %r" % s)
        domid = int(s[1:])
        if domid > 0xFFFF:
            raise XsError("EINVAL", "bad domid in permission %r" % s)
        out.append((domid, s[0]))
    return tuple(out)


def perms_to_strings(perms):
    return ["%s%d" % (p, d) for d, p in perms]


def perm_for(domid, perms):
    """The access ('n', 'r', 'w' or 'b') domain ``domid`` has on a node with ``perms``.
    Dom0 and the owner have everything; else the first ACL entry naming the domain,
    else the 'other' permission of the first entry (C xenstored perm_for_conn)."""
    if domid == 0 or perms[0][0] == domid:
        return "b"
    for d, p in perms[1:]:
        if d == domid:
            return p
    return perms[0][1]


def can_read(domid, perms):
    return perm_for(domid, perms) in "rb"


def can_write(domid, perms):
    return perm_for(domid, perms) in "wb"


# ------------------------------------------------------------------ store and views

class Store(object):
    """The live tree, the per-owner node counts and the special nodes' permissions."""

    def __init__(self):
        self._gen = 0
        self.nodes = {ROOT: Node(b"", ((0, "n"),), (), 0)}
        self.counts = {0: 1}
        self.special = {name: ((0, "n"),) for name in SPECIAL_PATHS}
        self.live = View(self, self.nodes, self.counts, tracked=False)

    def next_gen(self):
        self._gen += 1
        return self._gen

    def snapshot(self):
        """A private view for a transaction: a copy of the map, same node objects."""
        return View(self, dict(self.nodes), dict(self.counts), tracked=True)

    def commit(self, view):
        """Apply a transaction's changes if nothing it read or wrote changed since it
        started (C xenstored's rule). Returns False on conflict (EAGAIN)."""
        nodes = self.nodes
        for path, seen in view.accessed.items():
            if nodes.get(path) is not seen:
                return False
        for path in view.modified:
            self.live.put(path, view.nodes.get(path))
        return True

    def count(self, owner):
        return self.counts.get(owner, 0)

    def forget_domain(self, domid):
        """What oxenstored does on RELEASE (XSA-322 / XSA-419): delete the nodes the
        domain owns, drop its entries from every ACL. Fires no watches."""
        live = self.live
        owned = sorted((p for p, n in self.nodes.items()
                        if n.perms[0][0] == domid and p != ROOT), key=len)
        gone = set()
        for path in owned:
            if path in gone or path not in self.nodes:
                continue
            removed = live.remove_subtree(path)
            gone.update(removed)
        for path, node in list(self.nodes.items()):
            perms = node.perms
            if perms[0][0] == domid or any(d == domid for d, _ in perms[1:]):
                owner = perms[0] if perms[0][0] != domid else (0, perms[0][1])
                newp = (owner,) + tuple(e for e in perms[1:] if e[0] != domid)
                live.put(path, Node(node.value, newp, node.children, self.next_gen()))
        for name, perms in self.special.items():
            owner = perms[0] if perms[0][0] != domid else (0, perms[0][1])
            self.special[name] = (owner,) + tuple(e for e in perms[1:] if e[0] != domid)
        live.events = []
        return len(gone)


class View(object):
    """The tree as one request sees it: the live store, or a transaction's snapshot
    (``tracked``: remembers the first node object seen at every path it touched and the
    paths it changed). Every operation checks everything before it changes anything, so
    an error leaves nothing half-done. Watch events are queued in ``events``."""

    def __init__(self, store, nodes, counts, tracked):
        self.store = store
        self.nodes = nodes
        self.counts = counts
        self.accessed = {} if tracked else None
        self.modified = set() if tracked else None
        self.events = []

    # -- raw access
    def get(self, path):
        node = self.nodes.get(path)
        if self.accessed is not None and path not in self.accessed:
            self.accessed[path] = node
        return node

    def put(self, path, node):
        old = self.nodes.get(path)
        if self.accessed is not None:
            if path not in self.accessed:
                self.accessed[path] = old
            self.modified.add(path)
        counts = self.counts
        if old is not None:
            owner = old.perms[0][0]
            left = counts.get(owner, 0) - 1
            if left > 0:
                counts[owner] = left
            else:
                counts.pop(owner, None)
        if node is None:
            self.nodes.pop(path, None)
        else:
            self.nodes[path] = node
            owner = node.perms[0][0]
            counts[owner] = counts.get(owner, 0) + 1

    def _gen(self):
        return self.store.next_gen()

    # -- reads
    def _readable(self, domid, path):
        node = self.get(path)
        if node is None:
            raise XsError("ENOENT")
        if not can_read(domid, node.perms):
            raise XsError("EACCES")
        return node

    def read(self, domid, path):
        return self._readable(domid, path).value

    def directory(self, domid, path):
        return self._readable(domid, path).children

    def directory_node(self, domid, path):
        return self._readable(domid, path)

    def get_perms(self, domid, path):
        if path[0] == "@":
            perms = self.store.special.get(path)
            if perms is None:
                raise XsError("ENOENT")
            if not can_read(domid, perms):
                raise XsError("EACCES")
            return perms
        return self._readable(domid, path).perms

    # -- writes
    def write(self, domid, path, value):
        if len(value) > VALUE_MAX:
            raise XsError("E2BIG")
        node = self.get(path)
        if node is None:
            self._create(domid, path, value)
            return
        if not can_write(domid, node.perms):
            raise XsError("EACCES")
        self.put(path, Node(value, node.perms, node.children, self._gen()))
        self._changed(path, node.perms)

    def mkdir(self, domid, path):
        node = self.get(path)
        if node is not None:
            if not can_write(domid, node.perms):
                raise XsError("EACCES")
            return
        self._create(domid, path, b"")

    def _create(self, domid, path, value):
        missing = [path]
        anc_path = parent_of(path)
        anc = self.get(anc_path)
        while anc is None:
            missing.append(anc_path)
            anc_path = parent_of(anc_path)
            anc = self.get(anc_path)
        if not can_write(domid, anc.perms):
            raise XsError("EACCES")
        perms = anc.perms
        if domid != 0:
            # C xenstored: an unprivileged domain owns what it creates.
            perms = ((domid, perms[0][1]),) + perms[1:]
            if self.counts.get(domid, 0) + len(missing) > NODE_QUOTA:
                raise XsError("EQUOTA")
        gen = self._gen()
        missing.reverse()  # topmost first
        self.put(anc_path, Node(anc.value, anc.perms,
                                anc.children + (basename(missing[0]),), gen))
        last = len(missing) - 1
        for i, p in enumerate(missing):
            if i < last:
                self.put(p, Node(b"", perms, (basename(missing[i + 1]),), gen))
            else:
                self.put(p, Node(value, perms, (), gen))
        self._changed(path, perms)

    def _changed(self, path, perms, old_perms=None):
        parent = self.nodes.get(parent_of(path)) if path != ROOT else None
        cands = [perms]
        if old_perms is not None:
            cands.append(old_perms)
        if parent is not None:
            cands.append(parent.perms)
        self.events.append(("change", path, tuple(cands)))

    def rm(self, domid, path):
        if path == ROOT:
            raise XsError("EINVAL")
        node = self.get(path)
        if node is None:
            # Not an error if the parent exists (xenstore.txt).
            if self.get(parent_of(path)) is None:
                raise XsError("ENOENT")
            return
        if not can_write(domid, node.perms):
            raise XsError("EACCES")
        parent = self.get(parent_of(path))
        removed = self.remove_subtree(path)
        self.events.append(("rm", path, removed, parent.perms))

    def remove_subtree(self, path):
        """Unlink ``path`` from its parent and delete it with its descendants.
        Returns {path: old node} of what went."""
        removed = {}
        stack = [path]
        while stack:
            p = stack.pop()
            n = self.get(p)
            if n is None:
                continue
            removed[p] = n
            stack.extend(join(p, c) for c in n.children)
        for p in removed:
            self.put(p, None)
        ppath = parent_of(path)
        parent = self.get(ppath)
        name = basename(path)
        self.put(ppath, Node(parent.value, parent.perms,
                             tuple(c for c in parent.children if c != name), self._gen()))
        return removed

    def set_perms(self, domid, path, perms):
        if path[0] == "@":
            old = self.store.special.get(path)
            if old is None:
                raise XsError("ENOENT")
            if domid != 0:
                raise XsError("EACCES")
            self.store.special[path] = perms
            return
        node = self.get(path)
        if node is None:
            raise XsError("ENOENT")
        if domid != 0:
            # Only the owner may change permissions, and only dom0 may change the owner
            # (oxenstored answers EACCES to both).
            if node.perms[0][0] != domid or perms[0][0] != domid:
                raise XsError("EACCES")
        self.put(path, Node(node.value, perms, node.children, self._gen()))
        self._changed(path, perms, node.perms)
