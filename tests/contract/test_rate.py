"""TokenBucket: a burst goes through at once; sustained churn is held to the rate."""
from xsc_contract.rate import TokenBucket


def test_burst_then_rate():
    b = TokenBucket(interval=1.0, burst=3, now=0.0)
    assert [b.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert b.ready_at(0.0) == 1.0
    assert not b.take(0.5) and b.take(1.0) and not b.take(1.0)


def test_sustained_rate_is_bounded():
    b = TokenBucket(interval=1.0, burst=3, now=0.0)
    taken = sum(b.take(t / 100.0) for t in range(0, 6000))     # tries every 10 ms, 60 s
    assert 60 <= taken <= 63


def test_refills_to_the_burst_only():
    b = TokenBucket(interval=1.0, burst=2, now=0.0)
    assert b.take(0.0) and b.take(0.0) and not b.take(0.0)
    assert b.full(100.0)
    assert b.take(100.0) and b.take(100.0) and not b.take(100.0)
