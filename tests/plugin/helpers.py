"""Calling the xscontainer plugin through the lab's XAPI, as XO and XenCenter do."""
import xml.dom.minidom

import XenAPI

from tests.labfixture import docker, lab_cmd, wait_for  # noqa: F401 (re-exported)


class Plugin(object):
    def __init__(self, lab):
        self.lab = lab
        self.session = lab.session()
        self.x = self.session.xenapi

    def close(self):
        self.x.session.logout()

    def host_ref(self, name):
        return self.x.host.get_by_uuid(self.lab.host(name)["uuid"])

    def call(self, fn, host="host0", **args):
        return self.x.host.call_plugin(self.host_ref(host), "xscontainer", fn, args)

    def fail(self, fn, host="host0", **args):
        """The ErrorDescription of a call that must fail."""
        try:
            result = self.call(fn, host, **args)
        except XenAPI.Failure as e:
            return e.details
        raise AssertionError("%s(%r) succeeded: %r" % (fn, args, result[:200]))

    def vm_ref(self, name):
        return self.x.VM.get_by_uuid(self.lab.vm(name)["uuid"])

    def other_config(self, name):
        return self.x.VM.get_other_config(self.vm_ref(name))

    def messages(self, vm_name):
        uuid = self.lab.vm(vm_name)["uuid"]
        return [m for m in self.x.message.get_all_records().values() if m["obj_uuid"] == uuid]

    def resident_host_name(self, vm_name):
        host_uuid = self.lab.vm(vm_name)["host_uuid"]
        return [h["name"] for h in self.lab.info["hosts"] if h["uuid"] == host_uuid][0]

    def other_host_name(self, vm_name):
        here = self.resident_host_name(vm_name)
        return [h["name"] for h in self.lab.info["hosts"] if h["name"] != here][0]




def state_of(vm, name):
    return docker(vm, "inspect", "--format", "{{.State.Status}}", name)


def parse_xml(text):
    """Parse a document (raises on malformed XML); returns the DOM."""
    assert text.startswith('<?xml version="1.0" ?>'), text[:60]
    return xml.dom.minidom.parseString(text.encode("utf-8"))



class monitors_stopped(object):
    """Every host's monitor stopped for a while (its pid, as the lab recorded it), so that
    plugin calls take the plugin's own path instead of the monitor's warm connection;
    started again afterwards."""

    def __init__(self, lab):
        self.lab = lab

    def __enter__(self):
        from lab import pool
        from lab.state import Paths, Runtime
        rt = Runtime(Paths(self.lab.state))
        for host in self.lab.info["hosts"]:
            pool.stop_recorded(rt, "monitor-" + host["name"])
        return self

    def __exit__(self, *exc):
        lab_cmd("restart", "monitor", "--state", self.lab.state)
