"""xscontainer-monitor: the dom0 daemon that keeps docker_ps, docker_info and docker_version
of the registered VMs resident on this host true, and lends its warm connections to the
plugin.

One asyncio event loop holds every VM's SSH connection (asyncssh); XAPI is reached from a
fixed handful of threads (one watching ``event.from``, a few writing). See daemon.py for
the layout and docs/benchmarks.md for why.

This package is imported by the plugin only through ``protocol`` (no asyncssh there).
"""
