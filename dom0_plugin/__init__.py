"""xscontainer-ng: the part that runs in dom0 (plugin, monitor, transports, documents).

Everything in this package must run on dom0's Python 3.6.
"""

__version__ = "0.1.0"
