"""The factory, configuration, health check, error pages and response headers."""

import logging
from pathlib import Path

import pytest
from flask import abort, request

from app import create_app
from app.config import config_from_environment, normalise_database_url
from tests.conftest import TEST_SECRET_KEY


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db.example:5432/x", "postgresql+psycopg://u:p@db.example:5432/x"),
        ("postgresql://u:p@db.example/x", "postgresql+psycopg://u:p@db.example/x"),
        ("postgresql+psycopg://u@h/x", "postgresql+psycopg://u@h/x"),
        ("sqlite:///instance/x.sqlite3", "sqlite:///instance/x.sqlite3"),
    ],
)
def test_database_url_is_pointed_at_psycopg(given, expected):
    assert normalise_database_url(given) == expected


def test_database_url_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://heroku@db.example/d1")
    assert config_from_environment()["SQLALCHEMY_DATABASE_URI"] == (
        "postgresql+psycopg://heroku@db.example/d1"
    )


@pytest.mark.parametrize("key", [None, "", "dev", "changeme", "short-key"])
def test_production_refuses_to_start_without_a_strong_secret_key(monkeypatch, key):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app({"SECRET_KEY": key, "SQLALCHEMY_DATABASE_URI": "sqlite://"})


@pytest.mark.parametrize("missing", ["OIDC_ISSUER", "OIDC_CLIENT_ID"])
@pytest.mark.parametrize("empty", ["", None, "  "])
def test_production_refuses_to_start_without_an_identity_provider(missing, empty):
    settings = {
        "SECRET_KEY": TEST_SECRET_KEY,
        "SQLALCHEMY_DATABASE_URI": "sqlite://",
        "OIDC_ISSUER": "https://idp.example.com",
        "OIDC_CLIENT_ID": "linkdeck",
        missing: empty,
    }
    with pytest.raises(RuntimeError, match=f"{missing} must be set, or nobody can sign in"):
        create_app(settings)


@pytest.fixture
def production_logging_undone():
    """Put the shared `app` logger back after a production app pointed it at stdout."""
    logger = logging.getLogger("app")
    handlers, level = logger.handlers[:], logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


@pytest.mark.usefixtures("production_logging_undone")
def test_production_with_an_identity_provider_starts_and_signs_in_there(app_config, idp):
    app = create_app({**app_config, "TESTING": False})
    response = app.test_client().get("/login")
    assert response.status_code == 302
    assert response.headers["Location"].startswith(f"{idp.url}/")


def test_testing_without_a_key_gets_a_random_one(monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    first = create_app(
        {"TESTING": True, "SECRET_KEY": None, "SQLALCHEMY_DATABASE_URI": "sqlite://"}
    )
    second = create_app(
        {"TESTING": True, "SECRET_KEY": None, "SQLALCHEMY_DATABASE_URI": "sqlite://"}
    )
    assert len(first.config["SECRET_KEY"]) >= 32
    assert first.config["SECRET_KEY"] != second.config["SECRET_KEY"]


def test_healthz_reports_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "rate_limit_store": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_healthz_answers_503_when_the_database_is_unreachable(app_config, tmp_path):
    unreachable = (
        "postgresql+psycopg://postgres@127.0.0.1:1/nothing?connect_timeout=2"
        if app_config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")
        else f"sqlite:///{tmp_path / 'missing-dir' / 'db.sqlite3'}"
    )
    app = create_app({**app_config, "SQLALCHEMY_DATABASE_URI": unreachable})
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert response.get_json() == {
        "status": "unavailable",
        "database": "unreachable",
        "rate_limit_store": "ok",
    }


def test_unknown_page_gets_an_html_404(client):
    response = client.get("/orgs/x/links/y/z/nothing-here")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "Not Found" in response.get_data(as_text=True)


def test_api_errors_are_json(client):
    response = client.get("/api/v1/nothing")
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("code", "title", "error"),
    [
        (400, "Bad Request", "bad_request"),
        (403, "Forbidden", "forbidden"),
        (404, "Not Found", "not_found"),
        (405, "Method Not Allowed", "method_not_allowed"),
        (410, "Gone", "gone"),
        (500, "Something went wrong", "something_went_wrong"),
    ],
)
@pytest.mark.parametrize("path", ["/probe/{code}", "/api/probe/{code}", "/api?code={code}"])
def test_errors_are_a_page_or_json_under_api(app, code, title, error, path):
    def fail(code: int):
        """Fail the way a view would: abort, or an exception nobody caught."""
        if code == 500:
            raise RuntimeError("probe: secret detail")
        abort(code)

    app.add_url_rule("/probe/<int:code>", "probe", fail)
    app.add_url_rule("/api/probe/<int:code>", "api_probe", fail)
    app.add_url_rule("/api", "api_root_probe", lambda: fail(request.args.get("code", type=int)))
    if code == 500:
        # Answer as in production instead of re-raising into the test.
        app.config["PROPAGATE_EXCEPTIONS"] = False
    # A 405 comes from the router, which knows the allowed methods: ask with one it lacks.
    method = "DELETE" if code == 405 else "GET"

    response = app.test_client().open(path.format(code=code), method=method)

    assert response.status_code == code
    body = response.get_data(as_text=True)
    assert "secret detail" not in body
    assert "Traceback" not in body
    if code == 405:
        assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    if path.startswith("/api"):
        assert response.mimetype == "application/json"
        payload = response.get_json()
        assert set(payload) == {"error", "message"}
        assert payload["error"] == error
        assert payload["message"]
    else:
        assert response.mimetype == "text/html"
        assert f"<title>{title} · Linkdeck</title>" in body
        assert f"<h1>{title}</h1>" in body
        assert f"Error {code}" in body
        assert '<meta name="csrf-token" content="' in body


def test_wrong_method_gets_405_with_allow(client):
    # No CSRF error first: a request that matches no route never reaches the CSRF check.
    response = client.delete("/orgs")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}
    response = client.get("/logout")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]


def test_pages_carry_security_headers_and_csrf_meta(client):
    response = client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert '<meta name="csrf-token" content="' in response.get_data(as_text=True)


def test_vendored_assets_are_served_locally(client):
    page = client.get("/").get_data(as_text=True)
    assert "/static/vendor/htmx-4.0.1.min.js" in page
    assert "/static/vendor/pico-2.1.1.min.css" in page
    assert "//cdn" not in page
    assert "unpkg" not in page
    with client.get("/static/vendor/htmx-4.0.1.min.js") as response:
        assert response.status_code == 200


def test_every_template_is_autoescaped_html():
    templates = Path(__file__).parents[1] / "app" / "templates"
    names = [p.name for p in templates.rglob("*") if p.is_file()]
    assert names
    assert all(name.endswith(".html") for name in names), names
