"""Linkdeck: a URL shortener for teams. `create_app` is the application factory."""

import logging
import secrets
import signal
import sys
import threading
from pathlib import Path

import click
from authlib.integrations.flask_client import OAuth
from dotenv import load_dotenv
from flask import (
    Flask,
    Response,
    current_app,
    flash,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
)
from flask_login import login_url
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, InternalServerError, SecurityError
from werkzeug.middleware.proxy_fix import ProxyFix

from app import log_redaction
from app.config import (
    config_from_environment,
    database_engine_options,
    is_strong_secret_key,
    missing_oidc_settings,
    secure_cookie_name,
    trusted_hosts,
)
from app.database import bound_pings
from app.extensions import (
    csrf,
    db,
    link_create_limiter,
    login_manager,
    migrate,
    unknown_slug_limiter,
)
from app.fast_redirects import CachedRedirects
from app.htmx import is_partial_request
from app.security_headers import SecurityHeaders
from app.services.click_spool import ClickSpool, spool_directory
from app.services.errors import DomainError
from app.services.link_cache import LinkCache
from app.services.sessions import SESSION_COOKIE_FIELD, find_signed_in_user
from app.session_cookie import CookieSessionInterface


def create_app(config: dict | None = None) -> Flask:
    """Create and configure the app; `config` overrides settings read from the environment."""
    load_dotenv()
    app = Flask(__name__, instance_relative_config=True)
    app.session_interface = CookieSessionInterface()
    app.config.from_mapping(config_from_environment())
    if config:
        app.config.from_mapping(config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.setdefault(
        "SQLALCHEMY_DATABASE_URI",
        f"sqlite:///{Path(app.instance_path) / 'linkdeck.sqlite3'}",
    )
    # Options given explicitly (a test's, say) win over the derived timeouts.
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        **database_engine_options(app.config),
        **app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}),
    }
    app.config["TRUSTED_HOSTS"] = trusted_hosts(app.config)
    if app.config["SESSION_COOKIE_SECURE"]:
        app.config["SESSION_COOKIE_NAME"] = secure_cookie_name(app.config["SESSION_COOKIE_NAME"])
    _require_secret_key(app)
    _require_oidc_settings(app)

    register_logging(app)
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_security_headers(app)
    register_commands(app)
    # A cached link's redirect is answered before Flask (app/fast_redirects.py).
    app.wsgi_app = CachedRedirects(app, app.wsgi_app)
    proxies = app.config.get("TRUSTED_PROXIES", 0)
    if proxies > 0:
        # Each trusted proxy appends one X-Forwarded-For hop; the client's own entries,
        # further left, are ignored, so nobody can choose the IP they are counted as.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)
    return app


def _require_secret_key(app: Flask) -> None:
    """Refuse to run in production without a strong key; use a throwaway one in debug or tests."""
    if is_strong_secret_key(app.config.get("SECRET_KEY")):
        return
    if app.debug or app.testing:
        app.logger.warning("SECRET_KEY is missing or weak; using a random key for this process.")
        app.config["SECRET_KEY"] = secrets.token_hex(32)
        return
    raise RuntimeError(
        "SECRET_KEY must be set to a random value of at least 32 characters "
        '(python -c "import secrets; print(secrets.token_hex(32))").'
    )


def _require_oidc_settings(app: Flask) -> None:
    """Refuse to run in production without a provider to sign in with; debug and tests may."""
    missing = missing_oidc_settings(app.config)
    if not missing:
        return
    names = " and ".join(missing)
    if app.debug or app.testing:
        app.logger.warning("%s not set; sign-in will fail.", names)
        return
    # Starting anyway would answer every sign-in with a 503 that blames the provider.
    raise RuntimeError(
        f"{names} must be set, or nobody can sign in: OIDC_ISSUER is your OpenID Connect "
        "provider (discovery at $OIDC_ISSUER/.well-known/openid-configuration) and "
        "OIDC_CLIENT_ID the client registered there for this app."
    )


def register_logging(app: Flask) -> None:
    """Log to stdout, where a PaaS collects it, with secrets in URLs redacted."""
    log_redaction.install()
    if not app.debug and not app.testing:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        # On the handler, not the logger: the services' loggers (app.services.…) hand their
        # records up to this handler without passing the app logger's own filters.
        handler.addFilter(log_redaction.RedactSecrets())
        app.logger.handlers[:] = [handler]
        app.logger.setLevel(logging.INFO)


def register_extensions(app: Flask) -> None:
    """Bind the unbound extension instances to this app."""
    db.init_app(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        with app.app_context():
            bound_pings(db.engine, seconds=app.config["DATABASE_PING_TIMEOUT"])
    migrate.init_app(app, db, render_as_batch=True)
    csrf.init_app(app)
    unknown_slug_limiter.init_app(app)
    link_create_limiter.init_app(app)
    # The redirect's own state, one per app (and so per worker process).
    app.extensions["link_cache"] = LinkCache(
        max_links=app.config["LINK_CACHE_SIZE"],
        max_unknown=app.config["LINK_CACHE_UNKNOWN_SIZE"],
        refresh_seconds=app.config["LINK_CACHE_REFRESH_SECONDS"],
    )
    app.extensions["click_spool"] = ClickSpool(
        spool_directory(app), max_file_bytes=app.config["CLICK_SPOOL_FILE_BYTES"]
    )
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Sign in to continue."
    login_manager.login_message_category = "info"
    # One registry per app: Authlib's binds one app and would hand a second app built by
    # the factory (the tests build many) the first one's client.
    app.extensions["oidc"] = OAuth(app).register(
        "oidc",
        client_id=app.config["OIDC_CLIENT_ID"],
        client_secret=app.config["OIDC_CLIENT_SECRET"],
        server_metadata_url=f"{app.config['OIDC_ISSUER']}/.well-known/openid-configuration",
        client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256"},
    )

    from app.models import User, utcnow

    @login_manager.unauthorized_handler
    def unauthorized():
        """Send a signed-out browser to sign in, and come back here afterwards.

        An htmx fragment request gets 401 with HX-Redirect instead: following the redirect
        would swap the provider's login page into a table row.
        """
        target = login_url(login_manager.login_view, next_url=request.url)
        if is_partial_request():
            return "", 401, {"HX-Redirect": target}
        flash(login_manager.login_message, login_manager.login_message_category)
        return redirect(target)

    @login_manager.user_loader
    def load_user(user_id: str) -> User | None:
        """Find the signed-in user by the session's user id and its server-side session token.

        A cookie whose session signed out, was ended by "Sign out everywhere" or expired, or
        whose user was deleted, reads as signed out, even when it is a copy of a good one.
        """
        user = find_signed_in_user(int(user_id), session.get(SESSION_COOKIE_FIELD), now=utcnow())
        if user is None:
            # Drop the dead identity, so the next response stops sending it back.
            session.clear()
        return user


def register_blueprints(app: Flask) -> None:
    """Mount the blueprints; redirects last, as its `/<slug>` catches every other path."""
    from app.blueprints.auth import bp as auth_bp
    from app.blueprints.links import bp as links_bp
    from app.blueprints.orgs import bp as orgs_bp
    from app.blueprints.redirects import bp as redirects_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(orgs_bp)
    app.register_blueprint(links_bp)
    app.register_blueprint(redirects_bp)


def register_errorhandlers(app: Flask) -> None:
    """Answer errors with an HTML page, or JSON under /api."""

    def render_error(
        code: int, title: str, message: str, *, database_down: bool = False
    ) -> Response:
        """The error in the shape the caller reads: JSON, an htmx alert or a whole page.

        With the database down, templates are rendered without the context processors
        (they load the signed-in user) and the page is one without the usual layout.
        """
        if request.path == "/api" or request.path.startswith("/api/"):
            return make_response(
                jsonify(error=title.lower().replace(" ", "_"), message=message), code
            )
        if database_down:
            render, page = _render_without_context, "errors/unavailable.html"
        else:
            render, page = render_template, "errors/error.html"
        if is_partial_request():
            # htmx swaps 4xx and 5xx responses into the element that asked; a whole error
            # page there would land inside a table row, so send an alert to the page's
            # alert region instead and leave the element as it was.
            response = make_response(
                render("errors/partials/alert.html", title=title, message=message), code
            )
            response.headers.update({"HX-Retarget": "#alerts", "HX-Reswap": "innerHTML"})
        else:
            response = make_response(render(page, code=code, title=title, message=message), code)
        response.vary.add("HX-Request")
        return response

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        """Answer a missing or wrong CSRF token with 400 and a way to recover."""
        return render_error(
            400, "Bad request", f"{error.description} Reload the page and try again."
        )

    @app.errorhandler(DomainError)
    def domain_error(error: DomainError):
        """Answer a rule a service refused with its status and the service's own message."""
        titles = {
            403: "Forbidden",
            404: "Not Found",
            409: "Conflict",
            410: "Gone",
            422: "Invalid input",
        }
        response = render_error(
            error.status_code, titles.get(error.status_code, "Bad request"), error.message
        )
        if error.status_code == 503:
            response.headers["Retry-After"] = "1"
        return response

    @app.errorhandler(SecurityError)
    def untrusted_host(error: SecurityError):
        """Answer a Host header outside TRUSTED_HOSTS with plain text: no URL can be built
        for a host we do not serve, so no page (and no link in it) names that host."""
        return Response(
            "Bad request: this server does not answer for that host name.\n",
            400,
            {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"},
        )

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        """Answer an HTTP error (abort, routing) in the caller's shape, keeping its headers."""
        if error.code is None or error.code < 400:
            return error
        response = render_error(error.code, error.name, error.description or "")
        # Keep what the exception says in headers (Allow on 405, Retry-After on 503).
        for key, value in error.get_headers():
            if key.lower() != "content-type":
                response.headers[key] = value
        return response

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PoolTimeout)
    def database_unavailable(error: Exception):
        """Answer 503 with Retry-After while the database can not be reached.

        The page stands alone: the usual layout would query the database again for the
        signed-in user and their orgs.
        """
        db.session.rollback()
        app.logger.error("database unavailable: %s", type(error).__name__, exc_info=error)
        response = render_error(
            503,
            "Temporarily unavailable",
            "Linkdeck can not reach its database right now. Try again in a minute.",
            database_down=True,
        )
        response.headers["Retry-After"] = "30"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(InternalServerError)
    def server_error(error: InternalServerError):
        """Undo the failed request's writes and answer 500 without showing the exception."""
        db.session.rollback()
        return render_error(
            500, "Something went wrong", "The error has been logged. Please try again shortly."
        )


def _render_without_context(template: str, **context) -> str:
    """Render a template with only what it is given (and url_for), querying nothing."""
    return current_app.jinja_env.get_template(template).render(**context)


def register_security_headers(app: Flask) -> None:
    """Add the headers every response should carry (app/security_headers.py)."""
    headers = app.extensions["security_headers"] = SecurityHeaders(app.config.get("OIDC_ISSUER"))

    @app.after_request
    def add_headers(response):
        """Set the security headers a view has not set itself."""
        # One pass over the headers: each setdefault would scan them all again.
        present = {name.lower() for name, _ in response.headers}
        for name, value in headers.for_scheme(request.is_secure):
            if name.lower() not in present:
                response.headers.add(name, value)
        if _served_signed_in():
            # A page or fragment for a signed-in person: no browser cache, shared or back
            # button, may keep it for the next person at the same computer.
            response.headers["Cache-Control"] = "no-store"
        return response


def _served_signed_in() -> bool:
    """Tell whether this request was answered for a signed-in user (without loading one)."""
    user = g.get("_login_user")
    return user is not None and user.is_authenticated


def register_commands(app: Flask) -> None:
    """Expose the models in `flask shell`, and the click shipper as `flask ship-clicks`."""
    from app import models

    @app.cli.command("ship-clicks")
    @click.option(
        "--parent-pid",
        type=int,
        help="Also stop (after draining) once this process, the web server, has exited.",
    )
    def ship_clicks(parent_pid: int | None) -> None:
        """Store the clicks the web workers spool, every CLICK_SHIP_INTERVAL seconds.

        On SIGTERM or Ctrl-C it keeps going until every worker has closed its spool file
        and all of it is stored (at most CLICK_DRAIN_SECONDS), then exits; with status 1
        if clicks were left unstored.
        """
        from app.services import click_shipping

        stop = threading.Event()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signal_number, lambda *_: stop.set())
        drained = click_shipping.run(app, stop, parent_pid=parent_pid)
        sys.exit(0 if drained else 1)

    @app.shell_context_processor
    def shell_context():
        """Names `flask shell` starts with."""
        return {"db": db, "models": models}
