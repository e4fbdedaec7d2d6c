"""Capped exponential backoff with jitter, for reconnecting to VMs and to XAPI."""
import random


class Backoff(object):
    """Delays initial, 2*initial, 4*initial... capped at ``maximum``, each scaled by a
    random factor in [0.5, 1) so that many VMs failing together do not retry together."""

    def __init__(self, initial, maximum, rng=None):
        self.initial = float(initial)
        self.maximum = float(maximum)
        self.failures = 0
        self._random = rng or random.random

    def next(self):
        """The delay before the next attempt (and count one more failure)."""
        delay = min(self.maximum, self.initial * (2 ** min(self.failures, 30)))
        self.failures += 1
        return delay * (0.5 + 0.5 * self._random())

    def reset(self):
        self.failures = 0
