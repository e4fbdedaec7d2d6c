"""xscontainer-ng guest agent: reports a VM's Docker containers into its xenstore tree.

Python >= 3.8 and the Docker SDK. What it shares with dom0 (the report schema, the
xenstore client) is in ``xsc_contract``.
"""

__version__ = "0.1.0"
