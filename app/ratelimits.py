"""Limits that count only the requests that missed, so a hit never touches the limiter store.

Flask-Limiter checks a route's limit before its view runs, so an IP over an "unknown short
links" limit would be refused its real links too, and a whole office shares one IP. The
redirect asks a `MissLimiter` only once it has found nothing. Counts live in the store the
RATELIMIT_* settings name (Redis in production, shared by every worker), with the `limits`
strategies Flask-Limiter uses; while that store is down they are kept in process memory.
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

# After the store fails, misses are counted in memory this long before it is tried again,
# so a hung store costs one timeout per interval, not one per request.
STORE_RETRY_SECONDS = 10
# A store that stays down is reported this often, not on every request.
WARNING_INTERVAL_SECONDS = 60


class MissLimiter:
    """A per-client limit on one kind of miss; `init_app` gives each app its own counters."""

    def __init__(self, name: str, *, limit_setting: str):
        """Name the counters (also their key scope) and the setting that holds the limit."""
        self.name = name
        self.limit_setting = limit_setting

    def init_app(self, app: Flask) -> None:
        """Give `app` counters in the store its RATELIMIT_* settings name."""
        app.extensions[self.name] = _MissCounter(
            app.config, scope=self.name, limits=parse_many(app.config[self.limit_setting])
        )

    def count_miss(self, client: str) -> int | None:
        """Count a miss by `client`: the seconds it must wait if over the limit, else None."""
        return current_app.extensions[self.name].count_miss(client)

    def store_reachable(self) -> bool:
        """Tell whether the shared store answers a ping (memory storage always does)."""
        return current_app.extensions[self.name].storage.check()


class _MissCounter:
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

    def count_miss(self, client: str) -> int | None:
        """Count a miss in the shared store, or in memory when it fails or failed just now."""
        identifiers = (*self.scope, client)
        if monotonic() >= self.retry_store_at:
            try:
                return self._wait_after_hit(self.shared, identifiers)
            except self.storage.base_exceptions as error:
                self._store_failed(error)
        return self._wait_after_hit(self.local, identifiers)

    def _wait_after_hit(self, strategy: RateLimiter, identifiers: tuple[str, ...]) -> int | None:
        """Count one miss against every limit; the seconds until the exceeded ones reset."""
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
