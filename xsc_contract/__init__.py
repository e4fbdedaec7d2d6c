"""What the guest agent and dom0 both speak: the xenstore report's schema, the xenstore
wire client, and what Docker's events mean for a container list.

Imported by dom0 (Python 3.6, stdlib only: keep it so) and by the guest agent.
"""
