"""The relay pool: weighted choice among relays whose circuit breaker lets them through."""

from __future__ import annotations

from collections import Counter

from mailfleet.shared.relays import Relay
from mailfleet.worker.smtp.relay_pool import BreakerState, RelayPool

A = Relay.parse("smtp://127.0.0.1:2501?weight=3")
B = Relay.parse("smtp://127.0.0.1:2502?weight=1")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestRelayPool:
    def test_choice_follows_the_weights(self) -> None:
        """Weights 3:1 give about three quarters of the picks to the first relay."""
        pool = RelayPool([A, B], failures_to_open=3, cooldown=10)
        picks = Counter(pool.choose() for _ in range(4000))
        assert 2800 <= picks[A] <= 3200

    def test_failures_in_a_row_open_the_breaker_and_the_relay_is_skipped(self) -> None:
        """Three failures open A; then only B is chosen."""
        pool = RelayPool([A, B], failures_to_open=3, cooldown=10, clock=FakeClock())
        for _ in range(3):
            pool.record(A, failed=True)
        assert BreakerState.OPEN == pool.states()[A.name]
        assert {B} == {pool.choose() for _ in range(200)}

    def test_a_success_resets_the_count(self) -> None:
        """Two failures, a success, two failures: still closed."""
        pool = RelayPool([A], failures_to_open=3, cooldown=10)
        for failed in (True, True, False, True, True):
            pool.record(A, failed=failed)
        assert BreakerState.CLOSED == pool.states()[A.name]

    def test_after_the_cooldown_one_probe_decides(self) -> None:
        """Half-open lets one send through; success closes, failure reopens."""
        clock = FakeClock()
        pool = RelayPool([A], failures_to_open=1, cooldown=10, clock=clock)
        pool.record(A, failed=True)
        assert pool.choose() is None
        clock.now += 10
        assert A == pool.choose()
        assert pool.choose() is None  # the probe is out; nobody else goes
        pool.record(A, failed=True)
        assert BreakerState.OPEN == pool.states()[A.name]
        clock.now += 10
        assert A == pool.choose()
        pool.record(A, failed=False)
        assert BreakerState.CLOSED == pool.states()[A.name]
        assert A == pool.choose()

    def test_all_open_means_no_relay(self) -> None:
        """With every breaker open, choose() says so instead of picking a dead relay."""
        pool = RelayPool([A, B], failures_to_open=1, cooldown=10, clock=FakeClock())
        pool.record(A, failed=True)
        pool.record(B, failed=True)
        assert pool.choose() is None
        assert pool.choose(exclude=[A]) is None

    def test_a_probe_that_never_happened_is_released(self) -> None:
        """Chosen as the probe but not used (no token, stopping): the next send may probe."""
        clock = FakeClock()
        pool = RelayPool([A], failures_to_open=1, cooldown=10, clock=clock)
        pool.record(A, failed=True)
        clock.now += 10
        assert A == pool.choose()
        assert pool.choose() is None

        pool.release(A)

        assert A == pool.choose()
