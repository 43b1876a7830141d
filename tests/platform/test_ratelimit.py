"""Token buckets never grant more than the burst plus the rate times the elapsed time."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from andon.platform import RateLimiter, TokenBucket


@given(
    rate=st.floats(0.5, 1000),
    burst=st.floats(1, 1000),
    steps=st.lists(st.tuples(st.floats(0, 5), st.floats(0.1, 50)), max_size=50),
)
def test_bucket_never_overgrants(
    rate: float, burst: float, steps: list[tuple[float, float]]
) -> None:
    b = TokenBucket(rate, burst, now=0.0)
    now = granted = 0.0
    for dt, n in steps:
        now += dt
        if b.take(n, now) == 0.0:
            granted += n
        assert granted <= burst + rate * now + 1e-6


def test_limiter_is_per_tenant_and_counts_refusals() -> None:
    t = [0.0]
    lim = RateLimiter({"api": (1.0, 2.0)}, lambda: t[0])
    assert [lim.take("a", "api") for _ in range(3)] == [0.0, 0.0, 1.0]
    assert lim.take("b", "api") == 0.0
    assert lim.refused[("a", "api")] == 1
    t[0] = 1.0
    assert lim.take("a", "api") == 0.0
    assert lim.take("a", "other") == 0.0  # no limit configured


@given(
    steps=st.lists(st.tuples(st.floats(-7200, 5), st.floats(0.1, 50)), max_size=50),
)
def test_a_clock_stepped_back_never_makes_the_count_negative(
    steps: list[tuple[float, float]],
) -> None:
    """A wall clock set back (NTP, an operator) refills nothing and takes nothing: the count
    stays within [0, burst] and a refusal's wait is at most what the rate says."""
    b = TokenBucket(10.0, 20.0, now=0.0)
    now = 0.0
    for dt, n in steps:
        now += dt
        wait = b.take(n, now)
        assert 0.0 <= b.tokens <= 20.0
        assert wait == 0.0 or n > 20.0 or wait <= n / 10.0 + 1e-9
