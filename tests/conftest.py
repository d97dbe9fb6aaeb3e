"""Fixtures: a database per run (SQLite, or PostgreSQL with TEST_DATABASE_URL), a real OIDC
provider in a thread, the app and its test client, a live server, and Debian's Chromium."""

import contextlib
import io
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

import oidc_provider_mock
import psycopg
import pytest
import requests
import werkzeug.serving
from flask_migrate import upgrade
from sqlalchemy.engine import make_url

from app import create_app
from app.extensions import db
from app.services import click_shipping

IN_CI = os.environ.get("CI") == "true"
CHROMIUM = "/usr/lib/chromium/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
]
TEST_SECRET_KEY = "test-secret-key-that-is-long-enough-0123456789"
CLIENT_ID = "linkdeck-tests"


def skip_or_fail(reason: str):
    """Skip when a component is missing on a developer's machine; fail under CI."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true, so this is a failure)")
    pytest.skip(reason)


@contextlib.contextmanager
def created_postgres_database(base_url: str):
    """Create a uniquely named PostgreSQL database for this run and drop it afterwards."""
    url = make_url(base_url).set(drivername="postgresql+psycopg")
    name = f"linkdeck_test_{uuid.uuid4().hex[:12]}"
    admin_dsn = url.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    try:
        admin = psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        skip_or_fail(f"PostgreSQL is not reachable at {url.host}:{url.port}: {error}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def fresh_database_url(tmp_path):
    """An empty database of the kind this run tests against."""
    base = os.environ.get("TEST_DATABASE_URL")
    if base:
        with created_postgres_database(base) as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


@pytest.fixture
def postgres_only(database_url):
    """Skip behaviour only PostgreSQL can show (row locks, real concurrency) on the SQLite pass.

    Not a missing component: CI runs the same suite again with TEST_DATABASE_URL set.
    """
    if not is_postgres(database_url):
        pytest.skip("PostgreSQL-only behaviour; runs in the TEST_DATABASE_URL pass")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """The run's database, migrated to head once."""
    with fresh_database_url(tmp_path_factory.mktemp("db")) as url:
        yield url


class TokenRequestRecorder:
    """WSGI middleware keeping the form body of every POST to the provider's token endpoint.

    oidc-provider-mock does not verify PKCE, so tests check what our client sent instead.
    """

    def __init__(self, wsgi_app, token_path: str):
        self.wsgi_app = wsgi_app
        self.token_path = token_path
        self.requests: list[dict[str, str]] = []

    def __call__(self, environ, start_response):
        if environ["REQUEST_METHOD"] == "POST" and environ.get("PATH_INFO") == self.token_path:
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            # The provider reads the body after us: hand it an unread copy.
            environ["wsgi.input"] = io.BytesIO(body)
            self.requests.append(dict(parse_qsl(body.decode("ascii"))))
        return self.wsgi_app(environ, start_response)


@dataclass
class IdentityProvider:
    """A real oidc-provider-mock server and the calls a person's browser would make to it."""

    url: str
    # Form bodies of the token requests it received, oldest first (see TokenRequestRecorder).
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def set_user(self, sub: str, **claims) -> None:
        """Define the claims the provider puts in this subject's ID token."""
        response = requests.put(f"{self.url}/users/{sub}", json=claims, timeout=5)
        response.raise_for_status()

    def authorize(self, authorize_url: str, sub: str) -> str:
        """Pick `sub` on the provider's page; return the callback URL it redirects to."""
        response = requests.post(authorize_url, data={"sub": sub}, allow_redirects=False, timeout=5)
        assert response.status_code == 302, response.text
        return response.headers["Location"]


@pytest.fixture(scope="session")
def idp():
    """A real OIDC provider on 127.0.0.1 in a background thread, requiring a nonce,
    that records the token requests it receives."""
    provider = oidc_provider_mock.app(require_nonce=True)
    discovery = provider.test_client().get("/.well-known/openid-configuration").get_json()
    recorder = TokenRequestRecorder(provider, urlsplit(discovery["token_endpoint"]).path)
    server = werkzeug.serving.make_server("127.0.0.1", 0, recorder, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield IdentityProvider(f"http://127.0.0.1:{server.server_port}", recorder.requests)
    server.shutdown()
    thread.join(5)


@pytest.fixture(scope="session")
def _migrated(database_url, idp):
    app = create_app(_test_config(database_url, idp))
    with app.app_context():
        upgrade()
        db.engine.dispose()


def _test_config(database_url: str, idp: IdentityProvider) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": TEST_SECRET_KEY,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "OIDC_ISSUER": idp.url,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": "tests-client-secret",
        "SHORT_BASE_URL": "https://go.acme.test",
        # The test client calls localhost, the live server 127.0.0.1.
        "TRUSTED_HOSTS": ["localhost", "127.0.0.1", "go.acme.test"],
    }


@pytest.fixture
def app_config(database_url, idp, _migrated, tmp_path):
    """Settings for a test's app; a test may change them before using `app`.

    Its apps spool clicks into a directory of the test's own, as the workers of one
    machine share one.
    """
    return {**_test_config(database_url, idp), "CLICK_SPOOL_DIR": str(tmp_path / "click-spool")}


@pytest.fixture
def app(app_config):
    """The app on the run's database; every row it wrote is deleted afterwards."""
    app = create_app(app_config)
    yield app
    with app.app_context():
        db.session.remove()
        with db.engine.begin() as connection:
            for table in reversed(db.metadata.sorted_tables):
                connection.execute(table.delete())
        db.engine.dispose()


@pytest.fixture
def make_app(app_config):
    """Build more apps on the run's database (another worker, other settings).

    Their connections are closed afterwards: left to the garbage collector, an open
    PostgreSQL connection warns during whichever test happens to be running then.
    """
    made = []

    def make_app(**overrides):
        extra = create_app({**app_config, **overrides})
        made.append(extra)
        return extra

    yield make_app
    for extra in made:
        with extra.app_context():
            db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def csrf_token_from(html: str) -> str:
    """The CSRF token a page carries in its meta tag."""
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    assert match, "page has no csrf-token meta tag"
    return match.group(1)


def csrf_token(client, path: str = "/orgs") -> str:
    """Fetch a page as this client and return its CSRF token."""
    return csrf_token_from(client.get(path).get_data(as_text=True))


def start_sign_in(client, next_path: str | None = None) -> str:
    """Follow /login as a browser would; return the provider's authorisation URL."""
    response = client.get("/login", query_string={"next": next_path} if next_path else None)
    assert response.status_code == 302
    return response.headers["Location"]


def finish_sign_in(client, callback_url: str):
    """Deliver the provider's redirect back to our callback."""
    parts = urlsplit(callback_url)
    return client.get(parts.path, query_string=parts.query)


@pytest.fixture
def sign_in(client, idp):
    """Sign in through the real provider as `sub`; return the callback response."""

    def sign_in(
        sub: str, *, email=None, email_verified=True, name=None, next_path=None, as_client=None
    ):
        browser = as_client or client
        idp.set_user(
            sub,
            email=email or f"{sub}@example.com",
            email_verified=email_verified,
            name=name or sub.title(),
        )
        authorize_url = start_sign_in(browser, next_path)
        return finish_sign_in(browser, idp.authorize(authorize_url, sub))

    return sign_in


@pytest.fixture
def live_server(app):
    """The app served over HTTP on 127.0.0.1 for the browser tests, with its click shipper
    running beside it as under gunicorn."""
    server = werkzeug.serving.make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stop_shipping = threading.Event()
    shipper = threading.Thread(target=click_shipping.run, args=(app, stop_shipping), daemon=True)
    shipper.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)
    # The server's spool file closes, so the shipper stores the rest and drains.
    app.extensions["click_spool"].close()
    stop_shipping.set()
    shipper.join(30)


def require_chromium(path: str = CHROMIUM) -> None:
    """Skip, or fail under CI, unless Chromium is at the very path the browser tests launch.

    A `chromium` elsewhere on PATH does not count: Playwright is handed this path only.
    """
    if not os.access(path, os.X_OK):
        skip_or_fail(f"Chromium is not installed at {path} (apt-get install chromium)")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Launch Debian's Chromium; never a browser downloaded by Playwright."""
    require_chromium()
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture
def signed_in_client(app, idp):
    """A new browser (test client) signed in through the provider as `sub`."""

    def signed_in_client(sub: str, **claims):
        browser = app.test_client()
        idp.set_user(
            sub,
            email=claims.get("email", f"{sub}@example.com"),
            email_verified=claims.get("email_verified", True),
            name=claims.get("name", sub.title()),
        )
        response = finish_sign_in(browser, idp.authorize(start_sign_in(browser), sub))
        assert response.status_code == 302
        return browser

    return signed_in_client


def create_org_as(browser, name: str) -> str:
    """Create an org through the UI as this browser; return its slug."""
    response = browser.post("/orgs", data={"name": name, "csrf_token": csrf_token(browser)})
    assert response.status_code == 302
    return response.headers["Location"].split("/")[2]


@pytest.fixture
def grant_role(app, idp):
    """Give the signed-in-once user `sub` a role in the org (as an accepted invitation would)."""

    def grant_role(org_slug: str, sub: str, role: str) -> None:
        from app.models import Membership, Org, User

        with app.app_context():
            org = db.session.execute(db.select(Org).filter_by(slug=org_slug)).scalar_one()
            user = db.session.execute(
                db.select(User).filter_by(oidc_issuer=idp.url, oidc_subject=sub)
            ).scalar_one()
            db.session.add(Membership(org=org, user=user, role=role))
            db.session.commit()

    return grant_role


@pytest.fixture
def org_team(signed_in_client, grant_role):
    """An org `acme` with a signed-in owner, admin and member, and an outsider in no org."""
    owner = signed_in_client("owner")
    slug = create_org_as(owner, "Acme")
    admin = signed_in_client("admin")
    member = signed_in_client("member")
    outsider = signed_in_client("outsider")
    grant_role(slug, "admin", "admin")
    grant_role(slug, "member", "member")
    return {"slug": slug, "owner": owner, "admin": admin, "member": member, "outsider": outsider}


@pytest.fixture
def owner(org_team):
    """The signed-in owner of org_team's org."""
    return org_team["owner"]


@pytest.fixture
def acme(org_team):
    """The slug of org_team's org."""
    return org_team["slug"]


def run_at_once(*calls: Callable[[], object], timeout: float = 30) -> list:
    """Run each call in its own thread, released together by a barrier; return their results.

    An exception raised in any thread fails the test here, instead of vanishing with the thread.
    """
    barrier = threading.Barrier(len(calls))

    def released(call):
        barrier.wait(timeout)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(released, call) for call in calls]
        return [future.result(timeout) for future in futures]
