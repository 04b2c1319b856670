"""Password login (``--auth``) with failed attempts slowed down per user name and per client
address, never locked out for good.

Every failed check opens a waiting window for that user name and for that address: 1 s after
the first failure, doubling with each further one, capped at 60 s. An attempt that arrives while
either window is open is answered "no" after a short pause, without the password being checked,
so guessing in parallel gains nothing: at most one password per window is ever tried. A success
clears the user's and the address's counts, and counts are forgotten 15 minutes after the last
failure. The real user is never shut out for longer than one window after the last failure.

The client address is the TCP peer (``X-Forwarded-For`` is not trusted: anyone can send it).
Gradio gives the auth callable only the user name and password, so a small ASGI middleware puts
the address in a context variable for the duration of each request.
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

CLIENT_ADDRESS: contextvars.ContextVar[str] = contextvars.ContextVar(
    "promptopt_client_address", default="unknown"
)

AUTH_MESSAGE = (
    "Log in with your user name and password. After a wrong password, logins for that name and "
    "from this address are slowed down for a while: wait a little before trying again."
)


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    open_until: float = 0.0


class LoginThrottle:
    """Checks USER:PASS pairs, slowing failed attempts down (``check`` is the callable)."""

    def __init__(
        self,
        users: list[tuple[str, str]],
        *,
        base_s: float = 1.0,
        cap_s: float = 60.0,
        forget_after_s: float = 900.0,
        refuse_pause_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.users = dict(users)
        self.base_s = base_s
        self.cap_s = cap_s
        self.forget_after_s = forget_after_s
        self.refuse_pause_s = refuse_pause_s
        self.clock = clock
        self.sleep = sleep
        self._failures: dict[str, _Failures] = {}
        self._lock = threading.Lock()

    async def check(self, username: str, password: str) -> bool:
        """Gradio's ``auth=`` callable (a coroutine function, so the pause never blocks the
        server's event loop)."""
        keys = (f"user:{username}", f"address:{CLIENT_ADDRESS.get()}")
        with self._lock:
            now = self.clock()
            wait = max(self._entry(key, now).open_until - now for key in keys)
            if wait <= 0:
                ok = self._check(username, password)
                for key in keys:
                    if ok:
                        self._failures.pop(key, None)
                    else:
                        self._fail(key, now)
        if wait > 0:
            # Refused unchecked: answering slowly keeps a hammering client busy too.
            await self.sleep(min(wait, self.refuse_pause_s))
            return False
        return ok

    def delay_for(self, username: str, address: str) -> float:
        """Seconds until an attempt for this user from this address is checked again."""
        with self._lock:
            now = self.clock()
            keys = (f"user:{username}", f"address:{address}")
            return max(0.0, *(self._entry(key, now).open_until - now for key in keys))

    def _check(self, username: str, password: str) -> bool:
        expected = self.users.get(username)
        # Compare against something even for an unknown user, so timing does not tell names.
        given, wanted = password.encode("utf-8"), (expected or "\0" * 16).encode("utf-8")
        return hmac.compare_digest(given, wanted) and expected is not None

    def _entry(self, key: str, now: float) -> _Failures:
        entry = self._failures.get(key)
        if entry is None or now - entry.last > self.forget_after_s:
            entry = _Failures()
            self._failures[key] = entry
        return entry

    def _fail(self, key: str, now: float) -> None:
        entry = self._entry(key, now)
        entry.count += 1
        entry.last = now
        entry.open_until = now + min(self.cap_s, self.base_s * 2 ** (entry.count - 1))


class ClientAddressMiddleware:
    """Pure ASGI: sets ``CLIENT_ADDRESS`` for the request, in the task that handles it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            client = scope.get("client")
            token = CLIENT_ADDRESS.set(str(client[0]) if client else "unknown")
            try:
                await self.app(scope, receive, send)
            finally:
                CLIENT_ADDRESS.reset(token)
            return
        await self.app(scope, receive, send)


def auth_launch_kwargs(auth: list[tuple[str, str]] | None) -> dict[str, Any]:
    """The ``launch()`` arguments for password login, or none without users."""
    if not auth:
        return {}
    from starlette.middleware import Middleware

    return {
        "auth": LoginThrottle(auth).check,
        "auth_message": AUTH_MESSAGE,
        "app_kwargs": {"middleware": [Middleware(ClientAddressMiddleware)]},
    }
