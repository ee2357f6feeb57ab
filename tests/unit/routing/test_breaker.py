"""The circuit breaker's states, driven by a fake clock."""

from clearance.routing.breaker import CircuitBreaker


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_opens_after_consecutive_failures_and_recovers_after_cooldown():
    clock = Clock()
    b = CircuitBreaker(failures=3, cooldown=10, clock=clock)
    for _ in range(2):
        b.failure()
    assert b.allow() and b.state == "closed"
    b.failure()
    assert b.state == "open" and not b.allow()
    clock.t = 9.9
    assert not b.allow()
    clock.t = 10.0
    assert b.state == "half_open"
    assert b.allow()          # one trial call
    assert not b.allow()      # and only one
    b.success()
    assert b.state == "closed" and b.allow()


def test_failed_trial_reopens_for_another_cooldown():
    clock = Clock()
    b = CircuitBreaker(failures=1, cooldown=5, clock=clock)
    b.failure()
    clock.t = 5
    assert b.allow()
    b.failure()
    assert b.state == "open"
    clock.t = 9
    assert not b.allow()
    clock.t = 10
    assert b.allow()


def test_success_resets_the_count():
    b = CircuitBreaker(failures=2, cooldown=5, clock=Clock())
    b.failure()
    b.success()
    b.failure()
    assert b.state == "closed"
