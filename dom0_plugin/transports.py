"""Choosing how to reach a VM's Docker Engine. Each transport lives in its own module and
offers the same thing: `docker()`, a Docker API client for that VM."""
import logging

from dom0_plugin import constants as C
from dom0_plugin import pool_key, ssh_transport, xapi_vm
from dom0_plugin.docker_api import DockerClient
from dom0_plugin.errors import HostKeyMismatch

log = logging.getLogger(__name__)


class SshTransport(object):
    """A fresh SSH connection (the plugin's direct path when no warm one is at hand)."""

    name = C.MODE_SSH

    def __init__(self, session, vm):
        self.session = session
        self.vm = vm
        self.conn = None
        self.client = None

    def connect(self):
        pinned = ssh_transport.parse_pin(self.vm.other_config.get(C.KEY_HOSTKEY))
        conn = ssh_transport.SshConnection(
            self.vm.uuid, xapi_vm.addresses(self.session, self.vm), username_of(self.vm),
            pkey=pool_key.private_key(self.session), pinned=pinned)
        try:
            conn.open()     # an unpinned VM: HostKeyUnverified, before any credential
        except HostKeyMismatch as e:
            report_hostkey_mismatch(self.session, self.vm, e)
            raise
        self.conn = conn
        return conn

    def docker(self):
        if self.client is None:
            conn = self.conn or self.connect()
            self.client = DockerClient(conn.dial_stdio, vm=self.vm.uuid)
        return self.client

    def close(self):
        if self.client is not None:
            self.client.close()
        if self.conn is not None:
            self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def report_hostkey_mismatch(session, vm, error):
    """One XAPI message per offending key (not one per attempt): the admin must act."""
    offered = error.params[2]
    if vm.other_config.get(C.KEY_HOSTKEY_REFUSED) == offered:
        return
    xapi_vm.post_message(session, vm.uuid, C.ERR_HOSTKEY_MISMATCH, error.message(),
                         priority=2)
    xapi_vm.set_key(session, vm.ref, C.KEY_HOSTKEY_REFUSED, offered, vm.other_config)


def check_unpinned(session, vm):
    """A VM with no pinned host key: raise HostKeyUnverified naming the key it shows (a
    handshake only: nothing is sent that could authenticate), or VmUnreachable."""
    ssh_transport.SshConnection(vm.uuid, xapi_vm.addresses(session, vm),
                                username_of(vm)).open()
    raise AssertionError("an unpinned host key was accepted")   # open() always raises


def username_of(vm):
    return vm.other_config.get(C.KEY_USERNAME) or C.DEFAULT_USERNAME


class AgentTransport(object):
    """The guest agent: reports and requests through the VM's xenstore tree (no network)."""

    name = C.MODE_AGENT

    def __init__(self, session, vm):
        self.session = session
        self.vm = vm
        self.client = None

    def docker(self):
        if self.client is None:
            from dom0_plugin.agent_transport import AgentDocker
            self.client = AgentDocker(None, domid_of(self.session, self.vm), self.vm.uuid)
        return self.client

    def close(self):
        if self.client is not None:
            self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def domid_of(session, vm):
    domid = int(session.xenapi.VM.get_domid(vm.ref))
    if domid <= 0:
        from dom0_plugin.errors import VmNotRunning
        raise VmNotRunning(vm.uuid, vm.power_state)
    return domid


def agent_advertised(session, vm):
    """Whether the guest runs the xscontainer agent (its capability flag in xenstore)."""
    from dom0_plugin.agent_transport import agent_present
    from xsc_contract.xenstore import Client
    try:
        xs = Client()
    except OSError as e:
        log.warning("cannot reach xenstored to look for the agent of %s: %s", vm.uuid, e)
        return False
    try:
        return bool(agent_present(xs, domid_of(session, vm)))
    except Exception as e:  # a guest's tree is untrusted: any oddity means "no agent"
        log.info("VM %s: no usable agent (%s)", vm.uuid, e)
        return False
    finally:
        xs.close()


def open_for(session, vm):
    """The transport for this VM (its registration mode; SSH by default)."""
    mode = vm.other_config.get(C.KEY_TRANSPORT, C.MODE_SSH)
    if mode == C.MODE_SSH:
        # fast path: the local monitor's warm connection; direct SSH when it can't serve
        from dom0_plugin import monitor_client
        fast = monitor_client.transport_for(vm.uuid, lambda: SshTransport(session, vm))
        return fast or SshTransport(session, vm)
    if mode == C.MODE_AGENT:
        return AgentTransport(session, vm)
    from dom0_plugin.errors import InvalidArgument
    raise InvalidArgument(C.KEY_TRANSPORT, "transport %r is not available" % mode[:20])
