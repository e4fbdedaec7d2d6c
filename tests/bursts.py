"""Random back-to-back lifecycle calls on a real engine (one API connection, no pause
between calls): the adversarial event orders the followers must converge through."""

import random

# state -> the calls valid in it, each with the state it leads to
MOVES = {"running": (("pause", "paused"), ("stop", "exited"), ("restart", "running")),
         "paused": (("unpause", "running"), ("stop", "exited")),
         "exited": (("start", "running"), ("restart", "running"))}


class Bursts(object):
    """Plays seeded random bursts; ``states`` is what the engine must show after each."""

    def __init__(self, client, ids, seed=20261204):
        self.client = client
        self.states = dict((cid, "running") for cid in ids)
        self.rng = random.Random(seed)

    def play(self, shortest=2, longest=6):
        """One burst; the calls made, as (verb, id)."""
        calls = []
        for _ in range(self.rng.randint(shortest, longest)):
            cid = self.rng.choice(sorted(self.states))
            verb, self.states[cid] = self.rng.choice(MOVES[self.states[cid]])
            if verb in ("stop", "restart"):
                getattr(self.client, verb)(cid, grace=0)
            else:
                getattr(self.client, verb)(cid)
            calls.append((verb, cid))
        return calls
