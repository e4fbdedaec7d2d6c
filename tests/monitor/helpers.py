"""Helpers of the monitor's lab tests and benchmark: reading VM.other_config, watching the
documents change, enrolling VMs, driving a VM's Docker Engine."""
import json
import os
import time
import xml.dom.minidom

from dom0_plugin import constants as C
from dom0_plugin.monitor import status as st
from tests.labfixture import docker, wait_for  # noqa: F401 (re-exported for tests)

MONITOR_LOG = "xscontainer-monitor.log"


def xapi(lab):
    """A session over the lab's XAPI Unix socket (survives `lab restart xapi`, which may
    change the TCP port)."""
    import XenAPI
    x = lab.info["xapi"]
    session = XenAPI.Session("http://" + x["unix_socket"].replace("/", "_"),
                             transport=XenAPI.UDSTransport())
    session.xenapi.login_with_password(x["username"], x["password"], "1.0", "tests")
    return session


class Pool(object):
    """The lab pool as the monitor tests see it (re-logs in after an xapi restart)."""

    def __init__(self, lab):
        self.lab = lab
        self.session = xapi(lab)

    @property
    def x(self):
        return self.session.xenapi

    def call(self, method, *args):
        for attempt in range(60):
            try:
                target = self.x
                for part in method.split("."):
                    target = getattr(target, part)
                return target(*args)
            except Exception as error:  # xapi restarting: log in again
                details = getattr(error, "details", None)
                if details and details[0] != "SESSION_INVALID":
                    raise
                time.sleep(0.5)
                try:
                    self.session = xapi(self.lab)
                except Exception:
                    pass
        raise AssertionError("XAPI did not come back")

    def vm_ref(self, name):
        return self.call("VM.get_by_uuid", self.lab.vm(name)["uuid"])

    def other_config(self, name_or_ref):
        ref = name_or_ref if name_or_ref.startswith("OpaqueRef:") else self.vm_ref(name_or_ref)
        return self.call("VM.get_other_config", ref)

    def status(self, name_or_ref):
        return st.decode(self.other_config(name_or_ref).get(C.KEY_STATUS))

    def host_ref(self, name):
        return self.call("host.get_by_uuid", self.lab.host(name)["uuid"])

    def plugin(self, fn, host="host0", **args):
        return self.call("host.call_plugin", self.host_ref(host), C.PLUGIN_NAME, fn, args)

    def messages(self, name, message_name=C.MESSAGE_CANNOT_MONITOR):
        uuid = self.lab.vm(name)["uuid"]
        return [m for m in self.call("message.get_all_records").values()
                if m["obj_uuid"] == uuid and m["name"] == message_name]

    def resident_host(self, name):
        host_ref = self.call("VM.get_resident_on", self.vm_ref(name))
        uuid = self.call("host.get_uuid", host_ref)
        return [h["name"] for h in self.lab.info["hosts"] if h["uuid"] == uuid][0]

    def enrol(self, name):
        vm = self.lab.vm(name)
        self.plugin("prepare", vmuuid=vm["uuid"], username=vm["ssh"]["user"],
                    password=vm["ssh"]["password"], fingerprint=vm["ssh"]["fingerprint"])
        self.plugin("register", vmuuid=vm["uuid"])




def ps_entries(doc):
    """{name: status} of a docker_ps document (parsed: it must be well-formed)."""
    if doc is None:
        return None
    assert doc.startswith(C.XML_DECLARATION), doc[:80]
    dom = xml.dom.minidom.parseString(doc.encode("utf-8"))
    assert dom.documentElement.tagName == C.ROOT_DOCKER_PS
    out = {}
    for entry in dom.getElementsByTagName("entry"):
        fields = dict((n.tagName, "".join(t.data for t in n.childNodes
                                          if t.nodeType in (t.TEXT_NODE,
                                                            t.CDATA_SECTION_NODE)))
                      for n in entry.childNodes if n.nodeType == n.ELEMENT_NODE)
        out[fields.get("names")] = fields.get("status")
    return out




def monitor_log(lab, host):
    path = os.path.join(lab.state, "hosts", host, "log", MONITOR_LOG)
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def write_monitor_config(lab, host, settings):
    """Write /etc/xscontainer-ng/monitor.conf in a host's dom0 (read at the next start)."""
    from lab import dom0
    text = "".join("%s = %s\\n" % kv for kv in sorted(settings.items()))
    assert "'" not in text
    res = dom0.run_in_host(lab.host(host)["ns_pid"], [
        "/bin/sh", "-c", "mkdir -p /etc/xscontainer-ng && printf '%s' > "
        "/etc/xscontainer-ng/monitor.conf" % text], lab.info["dom0_python"])
    assert res.returncode == 0, res.stderr


def dump(obj):
    return json.dumps(obj, indent=1, sort_keys=True, default=str)


def ask_monitor(lab, host, verb="status"):
    """A control request (ping, status) to a host's monitor, over its socket."""
    from lab import dom0
    code = ("import sys, json; sys.path[:0]=['/usr/lib/xscontainer-ng'];"
            "from dom0_plugin import monitor_client as m;"
            "c=m.MonitorConnection(); print(json.dumps(c.request('', '%s')))" % verb)
    res = dom0.run_in_host(lab.host(host)["ns_pid"], ["/usr/bin/python3", "-c", code],
                           lab.info["dom0_python"])
    assert res.returncode == 0, res.stderr.decode()
    return json.loads(res.stdout.decode())
