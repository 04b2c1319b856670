"""Failed logins are slowed down per user and per client address, never locked out for good."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from promptopt.ui.harness import running_app
from promptopt.ui.login import CLIENT_ADDRESS, LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def _attempt(throttle: LoginThrottle, user: str, password: str, address: str) -> bool:
    token = CLIENT_ADDRESS.set(address)
    try:
        return asyncio.run(throttle.check(user, password))
    finally:
        CLIENT_ADDRESS.reset(token)


def test_thirty_wrong_passwords_then_the_right_one() -> None:
    """Issue 9, failure 7: 30 wrong passwords, then a success, with no limit at all."""
    clock = Clock()
    throttle = LoginThrottle([("alice", "right")], clock=clock, sleep=clock.sleep)
    checked = 0
    for _ in range(30):
        if throttle.delay_for("alice", "10.0.0.9") == 0:
            checked += 1
        assert _attempt(throttle, "alice", "wrong", "10.0.0.9") is False
        clock.now += 0.5  # a fast guesser
    # Only attempts made after each window closed were checked: 1 s, 2 s, 4 s, 8 s ... apart.
    assert checked <= 5
    assert clock.slept and max(clock.slept) <= 1.0
    clock.now += throttle.delay_for("alice", "10.0.0.9")
    assert _attempt(throttle, "alice", "wrong", "10.0.0.9") is False
    assert throttle.delay_for("alice", "10.0.0.9") == 16  # the fifth checked failure
    # Inside the window even the right password is not checked ...
    assert _attempt(throttle, "alice", "right", "10.0.0.9") is False
    # ... but after it the real user gets in: slowed, never locked out.
    clock.now += throttle.delay_for("alice", "10.0.0.9")
    assert _attempt(throttle, "alice", "right", "10.0.0.9") is True
    assert throttle.delay_for("alice", "10.0.0.9") == 0


def test_delay_grows_and_is_capped() -> None:
    clock = Clock()
    throttle = LoginThrottle([("a", "p")], clock=clock, sleep=clock.sleep, cap_s=60)
    delays = []
    for _ in range(10):
        assert _attempt(throttle, "a", "bad", "1.1.1.1") is False
        delays.append(throttle.delay_for("a", "1.1.1.1"))
        clock.now += delays[-1]
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    clock.now += 901  # forgotten after 15 quiet minutes
    assert throttle.delay_for("a", "1.1.1.1") == 0


def test_per_address_and_per_user() -> None:
    clock = Clock()
    throttle = LoginThrottle([("a", "p"), ("b", "q")], clock=clock, sleep=clock.sleep)
    assert _attempt(throttle, "a", "bad", "6.6.6.6") is False
    # The same address trying another name is slowed too (credential stuffing) ...
    assert throttle.delay_for("b", "6.6.6.6") == 1
    assert _attempt(throttle, "b", "q", "6.6.6.6") is False
    # ... another address for the failed name too (a distributed guess) ...
    assert throttle.delay_for("a", "7.7.7.7") == 1
    # ... but another user on another address is not affected.
    assert _attempt(throttle, "b", "q", "7.7.7.7") is True
    assert _attempt(throttle, "nobody", "x", "8.8.8.8") is False


def test_the_real_login_endpoint_is_throttled(tmp_path: Path) -> None:
    with running_app(tmp_path / "auth.db", auth=[("alice", "pw1")]) as app:
        url = app.url + "login"
        with httpx.Client(timeout=30) as http:
            assert http.post(url, data={"username": "alice", "password": "no"}).status_code == 400
            started = time.perf_counter()
            # The right password straight after a failure is refused, slowly ...
            assert http.post(url, data={"username": "alice", "password": "pw1"}).status_code == 400
            assert time.perf_counter() - started >= 0.5
            time.sleep(1.0)
            # ... and accepted once the one-second window has passed.
            ok = http.post(url, data={"username": "alice", "password": "pw1"})
            assert ok.status_code == 200 and ok.json() == {"success": True}
