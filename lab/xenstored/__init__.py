"""The lab's xenstore daemon: Xen's xenstore wire protocol over Unix sockets.

``python -m lab.xenstored --dom0-socket PATH --guest-socket-dir DIR [--log FILE]``

Behaviour follows oxenstored (the daemon of XenServer 8 / XCP-ng 8.3) for quotas and
error names, and C xenstored where the lab's brief asks for it (ownership of nodes a
guest creates, fine-grained transaction conflicts). See README.md in this folder.
"""
from .daemon import XenstoreDaemon, serve  # noqa: F401
from .protocol import XsError  # noqa: F401
