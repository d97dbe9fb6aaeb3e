"""A database that hangs (frozen, or holding a lock) gives a 503 with Retry-After within
seconds, never a worker stuck until gunicorn kills it, and recovery needs nobody."""

import contextlib
import selectors
import socket
import sqlite3
import threading
import time

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import csrf_token
from tests.link_helpers import create_link, dashboard_path
from tests.test_link_cache import SteppedClock

# What the issue promises a visitor: an answer within 10 s while the database hangs.
ANSWER_WITHIN_SECONDS = 10


class FreezableProxy:
    """A TCP proxy to the database that can stop passing bytes, as a SIGSTOPped server would.

    While frozen, the kernel still accepts connections and data (as it does for a stopped
    PostgreSQL), but nothing is forwarded and nothing comes back.
    """

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.running = threading.Event()
        self.running.set()
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stopping = True
        self.running.set()
        self.thread.join(5)
        self.listener.close()

    def freeze(self) -> None:
        """Stop passing bytes in either direction, and stop accepting connections."""
        self.running.clear()

    def thaw(self) -> None:
        """Pass bytes again."""
        self.running.set()

    def _serve(self) -> None:
        """Accept connections and shovel bytes both ways, pausing while frozen."""
        selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ, None)
        pairs: dict[socket.socket, socket.socket] = {}
        while not self.stopping:
            self.running.wait()
            for key, _ in selector.select(timeout=0.05):
                if not self.running.is_set():
                    break
                if key.data is None:
                    client, _ = self.listener.accept()
                    upstream = socket.create_connection(self.target)
                    pairs[client], pairs[upstream] = upstream, client
                    selector.register(client, selectors.EVENT_READ, "pipe")
                    selector.register(upstream, selectors.EVENT_READ, "pipe")
                    continue
                source = key.fileobj
                if source not in pairs:
                    continue  # its partner closed earlier in this same batch of events
                try:
                    chunk = source.recv(65536)
                except OSError:
                    chunk = b""
                if chunk:
                    with contextlib.suppress(OSError):
                        pairs[source].sendall(chunk)
                    continue
                for end in (source, pairs.pop(source)):
                    pairs.pop(end, None)
                    selector.unregister(end)
                    end.close()
        for end in pairs:
            end.close()
        selector.close()


@pytest.fixture
def proxied_app(make_app, app, database_url, postgres_only):
    """An app that reaches the run's PostgreSQL through a proxy the test can freeze."""
    url = make_url(database_url)
    with FreezableProxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        yield (
            make_app(
                SQLALCHEMY_DATABASE_URI=proxied, DATABASE_CONNECT_TIMEOUT=2, DATABASE_PING_TIMEOUT=1
            ),
            proxy,
        )


def timed_get(client, path: str):
    """GET a path; return the response and how many seconds it took."""
    started = time.monotonic()
    response = client.get(path)
    return response, time.monotonic() - started


def test_a_frozen_database_answers_503_within_seconds_and_recovers(proxied_app, org_team):
    proxied, proxy = proxied_app
    clock = SteppedClock()
    proxied.extensions["link_cache"].clock = clock
    create_link(org_team["owner"], org_team["slug"], "frozen")
    visitor = proxied.test_client()
    assert visitor.get("/frozen").status_code == 302  # a pooled connection now exists

    proxy.freeze()
    try:
        # Within the refresh interval the link is served from memory, database or not.
        cached, cached_seconds = timed_get(visitor, "/frozen")
        # After it, the worker must ask what changed before trusting its memory.
        clock.advance(proxied.config["LINK_CACHE_REFRESH_SECONDS"])
        redirect, redirect_seconds = timed_get(visitor, "/frozen")
        unknown, unknown_seconds = timed_get(visitor, "/no-such-link")
    finally:
        proxy.thaw()

    assert cached.status_code == 302
    assert cached_seconds < ANSWER_WITHIN_SECONDS

    for response, seconds in ((redirect, redirect_seconds), (unknown, unknown_seconds)):
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "30"
        assert "can not reach its database" in response.get_data(as_text=True)
        assert seconds < ANSWER_WITHIN_SECONDS
    # Nobody restarts anything: the next request after the thaw is served again.
    assert visitor.get("/frozen").status_code == 302


def test_a_database_that_never_answers_a_new_connection_gives_503(make_app, app):
    # A listening socket nobody accepts from: what a frozen PostgreSQL looks like to libpq.
    with socket.create_server(("127.0.0.1", 0), backlog=8) as silent:
        port = silent.getsockname()[1]
        client = make_app(
            SQLALCHEMY_DATABASE_URI=f"postgresql+psycopg://postgres@127.0.0.1:{port}/linkdeck",
            DATABASE_CONNECT_TIMEOUT=2,
        ).test_client()

        response, seconds = timed_get(client, "/some-link")

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert seconds < ANSWER_WITHIN_SECONDS


def test_a_page_waiting_on_a_held_lock_gives_503(make_app, app, database_url, org_team):
    create_link(org_team["owner"], org_team["slug"], "locked")
    owner = org_team["owner"]
    # The owner's browser, on an app whose statements may wait 500 ms for a lock.
    impatient = make_app(DATABASE_LOCK_TIMEOUT_MS=500)
    owner.application = impatient
    form = {"url": "https://example.com/while-locked", "csrf_token": csrf_token(owner)}
    with holding_the_links_table(database_url):
        response, seconds = timed_get(owner, "/locked")
        create = owner.post(dashboard_path(org_team["slug"]), data=form)

    if make_url(database_url).get_backend_name() == "sqlite":
        # In WAL mode a held write lock leaves readers alone: only the write waits.
        assert response.status_code == 302
    else:
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "30"
    assert seconds < ANSWER_WITHIN_SECONDS
    assert create.status_code == 503
    assert create.headers["Retry-After"] == "30"
    # Once the lock is gone, the same app answers again.
    assert owner.get("/locked").status_code == 302


@contextlib.contextmanager
def holding_the_links_table(database_url: str):
    """Hold a lock that blocks readers and writers of links (PostgreSQL), or the whole
    database's write lock, which blocks writers only (SQLite in WAL mode), until the
    block ends."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        connection = sqlite3.connect(url.database, isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")
    else:
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        connection = psycopg.connect(dsn)
        connection.execute("LOCK TABLE links IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        connection.rollback()
        connection.close()
