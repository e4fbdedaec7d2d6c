"""The lab's XAPI simulator: ``python -m lab.xapi --config CONFIG.json``.

A pool's XenAPI (XML-RPC over HTTP on TCP and Unix sockets) with xapi's errors, RBAC,
event.from, VM lifecycle (driving the lab's VMs through a hook) and ``host.call_plugin``
run exactly as xapi runs host plugins. Modules: schema (data model), wire (XML-RPC
values and errors), xmllight (xapi's XML for plugins), db (objects, generations,
persistence), events (event.from), vmops (VM operations, hook), plugins (call_plugin),
api (methods and dispatch), sim (config, sessions, one request), server (HTTP),
testing (start/stop a simulator from tests).
"""
