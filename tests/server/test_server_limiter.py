"""The per-caller limiter keeps bounded memory: rate windows of callers idle for a minute are
forgotten, while active callers keep their windows and limits."""

import pytest

from server.chat_request import RequestError
from server.limits import _PRUNE_EVERY, KeyLimiter


def test_idle_callers_are_forgotten_and_active_ones_kept():
    limiter = KeyLimiter(max_in_flight=4, per_minute=2)
    limiter.acquire("active", now=100.0)
    limiter.release("active")
    for i in range(_PRUNE_EVERY - 2):
        limiter.acquire(f"client-{i}", now=0.0)
        limiter.release(f"client-{i}")
    assert len(limiter.recent) == _PRUNE_EVERY - 1
    limiter.acquire("active", now=120.0)  # the sweep runs here: the others were idle 120 s
    limiter.release("active")
    assert list(limiter.recent) == ["active"] and not limiter.in_flight
    with pytest.raises(RequestError, match="rate limit: at most 2 requests per minute"):
        limiter.acquire("active", now=121.0)
