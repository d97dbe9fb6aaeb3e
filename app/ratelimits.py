"""Rate limits counted with `limits` (the library under Flask-Limiter), only where a view asks.

Flask-Limiter checks limits in a before-request hook that runs on every request, the
redirect's included: about a fifth of what a cached redirect costs, for one limited form.
So each limit here is counted by the view itself, at the point where it applies: the
redirect counts a visitor's unknown slugs only once it has found nothing (an office
sharing one IP keeps its real links however many typos it makes), and creating a link
counts the person. Counts live in the store the RATELIMIT_* settings name (Redis in
production, shared by every worker); while that store is down they are kept in process
memory, and the limit answers 429 with Retry-After through TooManyRequests.
"""

import math
import threading
import time
from collections.abc import Mapping
from time import monotonic

from flask import Flask, current_app
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import STRATEGIES, RateLimiter
from werkzeug.exceptions import TooManyRequests

# After the store fails, requests are counted in memory this long before it is tried again,
# so a hung store costs one timeout per interval, not one per request.
STORE_RETRY_SECONDS = 10
# A store that stays down is reported this often, not on every request.
WARNING_INTERVAL_SECONDS = 60


class RateLimit:
    """A per-client limit on one kind of request; `init_app` gives each app its own counters."""

    def __init__(self, name: str, *, limit_setting: str):
        """Name the counters (also their key scope) and the setting that holds the limit."""
        self.name = name
        self.limit_setting = limit_setting

    def init_app(self, app: Flask) -> None:
        """Give `app` counters in the store its RATELIMIT_* settings name."""
        app.extensions[self.name] = _Counter(
            app.config, scope=self.name, limits=parse_many(app.config[self.limit_setting])
        )

    def count(self, client: str) -> None:
        """Count one request by `client`; raise TooManyRequests (429, Retry-After) once it
        is over the limit."""
        retry_after = current_app.extensions[self.name].count(client)
        if retry_after is not None:
            raise TooManyRequests(retry_after=retry_after)

    def store_reachable(self) -> bool:
        """Tell whether the shared store answers a ping (memory storage always does)."""
        return current_app.extensions[self.name].storage.check()


class _Counter:
    """One app's counters: in the shared store, or in this process's memory while it is down."""

    def __init__(self, config: Mapping, *, scope: str, limits: list[RateLimitItem]):
        """Open the configured store, with RATELIMIT_STORAGE_OPTIONS (short socket timeouts)."""
        options = config.get("RATELIMIT_STORAGE_OPTIONS", {})
        self.storage = storage_from_string(config["RATELIMIT_STORAGE_URI"], **options)
        strategy = STRATEGIES[config.get("RATELIMIT_STRATEGY", "fixed-window")]
        self.shared = strategy(self.storage)
        self.local = strategy(MemoryStorage())
        self.limits = sorted(limits)
        prefix = config.get("RATELIMIT_KEY_PREFIX")
        self.scope = (prefix, scope) if prefix else (scope,)
        self.retry_store_at = 0.0
        self.warned_at: float | None = None
        self.lock = threading.Lock()

    def count(self, client: str) -> int | None:
        """Count a request in the shared store, or in memory when it fails or failed just
        now; the seconds the client must wait when over the limit, else None."""
        identifiers = (*self.scope, client)
        if monotonic() >= self.retry_store_at:
            try:
                return self._wait_after_hit(self.shared, identifiers)
            except self.storage.base_exceptions as error:
                self._store_failed(error)
        return self._wait_after_hit(self.local, identifiers)

    def _wait_after_hit(self, strategy: RateLimiter, identifiers: tuple[str, ...]) -> int | None:
        """Count one request against every limit; the seconds until the exceeded ones reset."""
        exceeded = [item for item in self.limits if not strategy.hit(item, *identifiers)]
        if not exceeded:
            return None
        reset_at = max(
            strategy.get_window_stats(item, *identifiers).reset_time for item in exceeded
        )
        return max(1, math.ceil(reset_at - time.time()))

    def _store_failed(self, error: Exception) -> None:
        """Count in memory for a while, and say so unless it was said within the last minute."""
        now = monotonic()
        with self.lock:
            self.retry_store_at = now + STORE_RETRY_SECONDS
            if self.warned_at is not None and now - self.warned_at < WARNING_INTERVAL_SECONDS:
                return
            self.warned_at = now
        current_app.logger.warning(
            "rate limit store unreachable (%s: %s); counting %s in this process until it answers",
            type(error).__name__,
            error,
            self.scope[-1],
        )
