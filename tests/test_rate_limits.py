"""Rate limits: creating links per person, unknown short links per IP, the IP a request is
counted as, and a limiter store that is down, hung or shared between workers."""

import logging
import socket
import time
import uuid

import pytest
import redis

from app import ratelimits
from tests.conftest import skip_or_fail
from tests.link_helpers import (
    HX,
    create_link,
    dashboard_path,
    link_count,
    link_row,
    post_link,
    shipped,
)

REDIS_URL = "redis://127.0.0.1:6379"
# Nothing listens on port 1: connecting is refused at once.
DOWN_REDIS_URL = "redis://127.0.0.1:1"


def follow(client, slug: str, ip: str, **headers):
    """Follow /<slug> as a visitor whose connection comes from `ip`."""
    return client.get(f"/{slug}", headers=headers, environ_base={"REMOTE_ADDR": ip})


def store_warnings(caplog) -> list[str]:
    """The warnings logged about an unreachable rate-limit store."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and "rate limit store unreachable" in record.message
    ]


@pytest.fixture
def strict_limits(app_config):
    """Low limits, so a test can reach them in a few requests."""
    app_config.update(UNKNOWN_SLUG_LIMIT="3 per minute", LINK_CREATE_LIMIT="2 per minute")
    return app_config


def test_guessing_slugs_from_one_ip_is_slowed_down(strict_limits, app, org_team):
    create_link(org_team["owner"], org_team["slug"], "real-one")
    guesser = app.test_client()
    # Following real links never counts towards the limit.
    assert [follow(guesser, "real-one", "198.51.100.7").status_code for _ in range(5)] == [302] * 5

    statuses = [follow(guesser, f"guess-{n}", "198.51.100.7").status_code for n in range(4)]

    assert statuses == [404, 404, 404, 429]
    refused = follow(guesser, "guess-9", "198.51.100.7")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert "Too Many Requests" in refused.get_data(as_text=True)
    # Someone else, from another address, is not affected.
    assert follow(app.test_client(), "guess-1", "203.0.113.50").status_code == 404


def test_creating_links_is_limited_per_person(strict_limits, app, org_team):
    owner, acme = org_team["owner"], org_team["slug"]
    assert post_link(owner, acme, "https://example.com/1").status_code == 302
    assert post_link(owner, acme, "https://example.com/2").status_code == 302

    refused = post_link(owner, acme, "https://example.com/3", htmx=True)

    assert refused.status_code == 429
    assert refused.headers["HX-Retarget"] == "#alerts"
    assert "Retry-After" in refused.headers
    assert link_count(app) == 2
    # The limit is the person's, not the office's: a colleague still creates.
    assert post_link(org_team["member"], acme, "https://example.com/4").status_code == 302
    assert link_count(app) == 3


def test_an_ip_over_the_unknown_link_limit_still_follows_its_real_links(
    strict_limits, app, org_team
):
    create_link(org_team["owner"], org_team["slug"], "real-one")
    office = app.test_client()
    misses = [follow(office, f"typo-{n}", "198.51.100.20").status_code for n in range(5)]
    assert misses == [404, 404, 404, 429, 429]

    # A colleague behind the same office IP follows a real link: it is not a guess.
    responses = [follow(office, "real-one", "198.51.100.20") for _ in range(3)]

    assert [response.status_code for response in responses] == [302] * 3
    assert responses[0].headers["Location"] == "https://example.com/page"
    assert shipped(app) == 3
    assert link_row(app, "real-one").click_count == 3
    # And the misses are still refused: the real links did not reset the count.
    assert follow(office, "typo-9", "198.51.100.20").status_code == 429


def test_a_spoofed_x_forwarded_for_neither_frames_another_ip_nor_escapes_the_limit(
    strict_limits, app
):
    guesser, victim = "203.0.113.66", "198.51.100.7"
    # No proxy is trusted by default: X-Forwarded-For is the client's own claim.
    statuses = [
        follow(app.test_client(), f"guess-{n}", guesser, **{"X-Forwarded-For": victim}).status_code
        for n in range(4)
    ]
    assert statuses == [404, 404, 404, 429]

    # The address it named is untouched; the guesser stays limited whatever it claims.
    assert follow(app.test_client(), "guess-1", victim).status_code == 404
    claims_another = follow(app.test_client(), "guess-5", guesser, **{"X-Forwarded-For": "1.2.3.4"})
    assert claims_another.status_code == 429


def test_behind_a_trusted_proxy_the_hop_it_appended_is_the_counted_ip(strict_limits, make_app):
    client = make_app(TRUSTED_PROXIES=1).test_client()
    router = "10.1.2.3"

    # The router appends the address it saw; anything to its left is the client's claim.
    statuses = [
        follow(
            client, f"guess-{n}", router, **{"X-Forwarded-For": f"192.0.2.{n}, 198.51.100.7"}
        ).status_code
        for n in range(4)
    ]

    assert statuses == [404, 404, 404, 429]
    # Another visitor through the same router is counted on its own.
    other = follow(client, "guess-1", router, **{"X-Forwarded-For": "203.0.113.50"})
    assert other.status_code == 404


def test_redirects_keep_working_when_the_limiter_store_is_down(make_app, org_team, caplog):
    create_link(org_team["owner"], org_team["slug"], "still-on")
    app = make_app(RATELIMIT_STORAGE_URI=DOWN_REDIS_URL, UNKNOWN_SLUG_LIMIT="3 per minute")
    client = app.test_client()

    with caplog.at_level(logging.INFO):
        hits = [follow(client, "still-on", "198.51.100.8").status_code for _ in range(3)]
        # A hit never asks the store, so nothing has noticed it is down yet.
        assert store_warnings(caplog) == []
        misses = [follow(client, f"nope-{n}", "198.51.100.8").status_code for n in range(5)]
        more_hits = [follow(client, "still-on", "198.51.100.8").status_code for _ in range(3)]

    assert hits == more_hits == [302] * 3
    # Counted in memory meanwhile: guessing is still slowed down.
    assert misses == [404, 404, 404, 429, 429]
    assert len(store_warnings(caplog)) == 1
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert not [record for record in caplog.records if record.exc_info]
    assert shipped(app) == 6
    assert link_row(app, "still-on").click_count == 6


def test_a_store_that_stays_down_is_reported_again_a_minute_later(make_app, caplog, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(ratelimits, "monotonic", lambda: now[0])
    client = make_app(RATELIMIT_STORAGE_URI=DOWN_REDIS_URL).test_client()

    with caplog.at_level(logging.WARNING):
        for seconds in (0, 15, 30, 45, 59, 61, 90):
            now[0] = 1000.0 + seconds
            assert follow(client, f"nope-{seconds}", "198.51.100.8").status_code == 404

    assert len(store_warnings(caplog)) == 2


def test_healthz_reports_a_store_that_is_down_as_degraded_not_failed(make_app):
    client = make_app(RATELIMIT_STORAGE_URI=DOWN_REDIS_URL).test_client()

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.get_json() == {
        "status": "degraded",
        "database": "ok",
        "rate_limit_store": "unreachable",
    }
    assert response.headers["Cache-Control"] == "no-store"


def test_healthz_reports_the_rate_limit_store_when_all_is_well(client):
    assert client.get("/healthz").get_json() == {
        "status": "ok",
        "database": "ok",
        "rate_limit_store": "ok",
    }


@pytest.fixture
def hung_store():
    """A Redis URL whose server accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def test_a_hung_store_delays_neither_healthz_nor_misses_for_long(make_app, hung_store):
    client = make_app(RATELIMIT_STORAGE_URI=hung_store).test_client()

    started = time.monotonic()
    health = client.get("/healthz")
    miss = follow(client, "nope", "198.51.100.8")
    elapsed = time.monotonic() - started

    assert health.status_code == 200
    assert health.get_json()["rate_limit_store"] == "unreachable"
    assert miss.status_code == 404
    # redis-py waits five seconds per call by default; the store's options cut that short.
    assert elapsed < 4


def test_workers_share_their_counts_through_redis(make_app, org_team):
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError as error:
        skip_or_fail(f"Redis is not reachable at {REDIS_URL}: {error}")
    shared = {
        "RATELIMIT_STORAGE_URI": REDIS_URL,
        "RATELIMIT_KEY_PREFIX": f"linkdeck-test-{uuid.uuid4().hex}",
        "UNKNOWN_SLUG_LIMIT": "3 per minute",
    }
    # Two apps stand for two gunicorn workers (or dynos) behind one router.
    first, second = make_app(**shared).test_client(), make_app(**shared).test_client()

    statuses = [
        follow(worker, f"guess-{n}", "198.51.100.9").status_code
        for n, worker in enumerate([first, second, first, second])
    ]

    assert statuses == [404, 404, 404, 429]


def test_the_dashboard_itself_is_not_rate_limited(strict_limits, app, org_team):
    owner = org_team["owner"]
    statuses = {
        owner.get(dashboard_path(org_team["slug"]), headers=HX).status_code for _ in range(8)
    }
    assert statuses == {200}
