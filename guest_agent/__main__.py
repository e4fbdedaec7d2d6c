"""``python -m guest_agent``: run the guest agent (see guest_agent.agent)."""
import sys

from guest_agent.agent import main

sys.exit(main())
