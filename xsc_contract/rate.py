"""A token bucket: a short burst goes through at once, sustained churn is held to a rate
(the guest agent's xenstore publishes and the monitor's XAPI writes per VM both use it)."""


class TokenBucket(object):
    """``burst`` actions at once, then one every ``interval`` seconds on average.

    Sans clock: the caller passes monotonic times, so tests can drive it.
    """

    def __init__(self, interval, burst, now):
        self.interval = float(interval)
        self.burst = max(1.0, float(burst))
        self.tokens = self.burst
        self.last = now

    def _refill(self, now):
        if self.interval <= 0:
            self.tokens = self.burst
        elif now > self.last:
            self.tokens = min(self.burst, self.tokens + (now - self.last) / self.interval)
        self.last = max(self.last, now)

    def take(self, now):
        """Spend one token if there is one: True when the action may happen now."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def ready_at(self, now):
        """When the next token is there (``now`` if it already is)."""
        self._refill(now)
        if self.tokens >= 1.0:
            return now
        return now + (1.0 - self.tokens) * self.interval

    def full(self, now):
        """No action taken for long enough that the bucket is full (it can be dropped)."""
        self._refill(now)
        return self.tokens >= self.burst
