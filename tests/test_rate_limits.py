"""Rate limits: creating links per person, unknown short links per IP, and a limiter store
that is down or shared between workers."""

import uuid

import pytest
import redis

from tests.conftest import skip_or_fail
from tests.link_helpers import HX, create_link, dashboard_path, link_count, post_link

REDIS_URL = "redis://127.0.0.1:6379"


def follow(client, slug: str, ip: str):
    """Follow /<slug> as a visitor from `ip` (through the router's X-Forwarded-For)."""
    return client.get(f"/{slug}", headers={"X-Forwarded-For": ip})


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


def test_redirects_keep_working_when_the_limiter_store_is_down(make_app, org_team):
    create_link(org_team["owner"], org_team["slug"], "still-on")
    client = make_app(RATELIMIT_STORAGE_URI="redis://127.0.0.1:1").test_client()
    assert follow(client, "still-on", "198.51.100.8").status_code == 302
    assert follow(client, "no-such-link", "198.51.100.8").status_code == 404


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
