"""xscontainer-ng guest agent: reports a VM's Docker containers into its xenstore tree.

``xenstore`` and ``report_schema`` are also imported by dom0: they stay Python 3.6
compatible and stdlib only. The rest needs Python >= 3.8 and the Docker SDK.
"""

__version__ = "0.1.0"
