"""Redirects resolve from each worker's memory and stay true to the database.

Two apps on the run's database stand for two workers (or two dynos): each has its own
engine and its own cache. The second one's cache runs on a clock the test steps, so
"within the refresh interval" is checked without waiting for it.
"""

import pytest

from app.extensions import db
from app.models import Link
from tests.link_helpers import create_link, mutate
from tests.org_helpers import post_form, recorded_sql


class SteppedClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def other_worker(make_app):
    """Another worker: its own app, engine and cache, with a clock the test steps."""
    worker = make_app()
    clock = SteppedClock()
    worker.extensions["link_cache"].clock = clock
    return worker, clock


def visit(app, slug: str):
    """Follow the short link on this worker as an anonymous visitor."""
    return app.test_client().get(f"/{slug}")


def wait_out_refresh(worker, clock) -> None:
    """Let the worker's refresh interval pass, as a second of real time would."""
    clock.advance(worker.config["LINK_CACHE_REFRESH_SECONDS"])


def test_a_cached_redirect_sends_no_sql(app, org_team, other_worker):
    worker, _ = other_worker
    create_link(org_team["owner"], org_team["slug"], "launch")
    assert visit(worker, "launch").status_code == 302  # read once, then remembered

    with recorded_sql(worker) as sent:
        responses = [visit(worker, "launch") for _ in range(5)]

    assert [response.status_code for response in responses] == [302] * 5
    assert responses[0].headers["Location"] == "https://example.com/page"
    assert sent == []


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("POST", "/orgs/acme/links/launch/deactivate", "was deactivated"),
        ("DELETE", "/orgs/acme/links/launch", "was deleted"),
    ],
)
def test_a_deactivated_or_deleted_link_is_gone_from_every_worker_within_the_refresh_interval(
    app, org_team, other_worker, method, path, message
):
    worker, clock = other_worker
    owner = org_team["owner"]
    create_link(owner, org_team["slug"], "launch")
    assert visit(worker, "launch").status_code == 302

    response = mutate(owner, method, path, "acme")
    assert response.status_code == 200

    # The worker that made the change forgets the link as its transaction commits.
    assert visit(app, "launch").status_code == 410
    wait_out_refresh(worker, clock)
    gone = visit(worker, "launch")
    assert gone.status_code == 410
    assert message in gone.get_data(as_text=True)


def test_an_edited_destination_reaches_every_worker_within_the_refresh_interval(
    app, org_team, other_worker
):
    worker, clock = other_worker
    owner = org_team["owner"]
    create_link(owner, org_team["slug"], "launch")
    assert visit(worker, "launch").headers["Location"] == "https://example.com/page"

    response = mutate(
        owner, "PATCH", "/orgs/acme/links/launch", "acme", data={"url": "https://example.org/new"}
    )
    assert response.status_code == 200

    wait_out_refresh(worker, clock)
    assert visit(worker, "launch").headers["Location"] == "https://example.org/new"


def test_a_new_link_resolves_where_its_slug_was_just_unknown(app, org_team, other_worker):
    worker, clock = other_worker
    assert visit(worker, "soon").status_code == 404  # remembered as unknown
    with recorded_sql(worker) as sent:
        assert visit(worker, "soon").status_code == 404
    assert sent == []  # a flood of misses costs no queries

    create_link(org_team["owner"], org_team["slug"], "soon")

    wait_out_refresh(worker, clock)
    arrived = visit(worker, "soon")
    assert arrived.status_code == 302
    assert arrived.headers["Location"] == "https://example.com/page"


def test_the_links_of_a_deleted_org_are_gone_from_every_worker(app, org_team, other_worker):
    worker, clock = other_worker
    create_link(org_team["owner"], org_team["slug"], "launch")
    assert visit(worker, "launch").status_code == 302

    response = post_form(org_team["owner"], "/orgs/acme/delete", {"confirm_name": "Acme"})
    assert response.status_code == 302

    wait_out_refresh(worker, clock)
    gone = visit(worker, "launch")
    assert gone.status_code == 410
    assert "was deleted" in gone.get_data(as_text=True)


def test_refusing_private_destinations_again_disables_the_orgs_private_links_everywhere(
    app, org_team, other_worker
):
    worker, clock = other_worker
    owner = org_team["owner"]
    settings = {"name": "Acme", "allowed_email_domain": ""}
    post_form(owner, "/orgs/acme/settings", {**settings, "allow_private_destinations": "1"})
    create_link(owner, org_team["slug"], "wiki", url="http://10.1.2.3/wiki")
    assert visit(worker, "wiki").headers["Location"] == "http://10.1.2.3/wiki"

    response = post_form(owner, "/orgs/acme/settings", settings)
    assert response.status_code == 302

    wait_out_refresh(worker, clock)
    assert visit(worker, "wiki").status_code == 410


def test_a_link_with_a_click_limit_is_read_fresh_so_its_last_click_is_the_last_everywhere(
    app, org_team, other_worker
):
    worker, _ = other_worker
    create_link(org_team["owner"], org_team["slug"], "once", max_clicks="1")

    assert visit(app, "once").status_code == 302
    # No refresh interval passes: the other worker must still refuse it.
    used_up = visit(worker, "once")
    assert used_up.status_code == 410
    assert "has expired" in used_up.get_data(as_text=True)


def test_changes_are_stamped_with_increasing_versions_in_their_transaction(app, org_team):
    owner = org_team["owner"]
    create_link(owner, org_team["slug"], "first")
    create_link(owner, org_team["slug"], "second")
    mutate(owner, "POST", "/orgs/acme/links/first/deactivate", "acme")

    with app.app_context():
        versions = dict(db.session.execute(db.select(Link.slug, Link.version)).all())
    assert 0 < versions["second"] < versions["first"]


def test_a_link_created_on_a_worker_that_just_missed_its_slug_resolves_there_at_once(app, org_team):
    owner = org_team["owner"]
    assert visit(app, "fresh").status_code == 404
    response = mutate(
        owner,
        "POST",
        "/orgs/acme/links",
        "acme",
        data={"url": "https://example.com/fresh", "slug": "fresh"},
    )
    assert response.status_code == 201
    assert visit(app, "fresh").headers["Location"] == "https://example.com/fresh"
