"""The cached redirect: `GET /<slug>` of a link in the worker's cache, answered in front of
Flask.

Nearly every request a shortener serves is an anonymous visitor following a live link this
worker has seen before. For that request, Flask's request context, routing, session and
hooks cost more than everything the redirect itself does (perf-baseline.md; `make bench`
compares it with a minimal Flask app). So this WSGI middleware answers it from memory: the
link from the worker's `LinkCache`, the click appended to the worker's spool. Whatever it
is not sure about goes on to Flask unchanged, which answers it as before:

- any method but GET, a path that is not one segment, a preview (`/<slug>+`), a reserved
  word (a route of ours);
- a request with the session cookie (a member's click is told apart by a database check);
- a Host outside TRUSTED_HOSTS (Flask answers 400);
- a slug not cached, or a cache whose refresh is due (a query, made in Flask's app
  context), or a link that does not redirect (its page is a template);
- a day whose visitor salt this app has not read yet.

The response is built by `redirect_response`, which the Flask view uses too, plus the
same security headers (app/security_headers.py), so the two answers are the same bytes.
"""

from collections.abc import Callable, Iterable

from flask import Flask
from markupsafe import escape
from werkzeug.exceptions import SecurityError
from werkzeug.wsgi import get_host

from app.models import utcnow
from app.services import links as link_service
from app.services.clicks import Visit, cached_salt, record_cached_visit
from app.services.destinations import own_hosts
from app.services.slugs import could_be_stored, reserved_slugs

# The Host headers whose own-host list is remembered; beyond these (a flood of made-up
# names that are all trusted, say) requests still work, through get_host each time.
_MAX_REMEMBERED_HOSTS = 64
# What werkzeug.utils.redirect sends, so clients that do not follow Location see a link.
_REDIRECT_PAGE = (
    "<!doctype html>\n"
    "<html lang=en>\n"
    "<title>Redirecting...</title>\n"
    "<h1>Redirecting...</h1>\n"
    "<p>You should be redirected automatically to the target URL: "
    '<a href="{location}">{location}</a>. If not, click the link.\n'
)

WsgiApp = Callable[[dict, Callable], Iterable[bytes]]


def redirect_response(destination: str) -> tuple[list[tuple[str, str]], bytes]:
    """The headers (security headers aside) and body of a short link's 302 to
    `destination`: the Flask view's answer and the cached one's."""
    body = _REDIRECT_PAGE.format(location=escape(destination)).encode()
    headers = [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Location", destination),
        # Destinations change and links get deactivated: no browser or proxy may keep it.
        ("Cache-Control", "no-store"),
        # A member's session cookie makes the same visit the team's own click.
        ("Vary", "Cookie"),
    ]
    return headers, body


def visit_of(environ: dict, *, country_header: str | None, user_id: int | None = None) -> Visit:
    """What a redirect request says about its visitor, read from the WSGI environ (Flask's
    request.headers would rebuild each header name, on every click).

    `country_header` is the CDN's trusted country header, if one is configured.
    """
    country_key = "HTTP_" + country_header.upper().replace("-", "_") if country_header else None
    return Visit(
        user_agent=environ.get("HTTP_USER_AGENT"),
        referrer=environ.get("HTTP_REFERER"),
        remote_addr=environ.get("REMOTE_ADDR"),
        country=environ.get(country_key) if country_key else None,
        purpose=environ.get("HTTP_SEC_PURPOSE") or environ.get("HTTP_PURPOSE"),
        user_id=user_id,
    )


class CachedRedirects:
    """WSGI middleware answering cached links' redirects; everything else goes to
    `wsgi_app` (Flask's)."""

    def __init__(self, app: Flask, wsgi_app: WsgiApp):
        self.app = app
        self.wsgi_app = wsgi_app
        self._hosts: dict[tuple[str, str], tuple[str, ...] | None] = {}
        self._reserved: set[str] | None = None

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        """Answer a cached link's redirect here, or hand the request to Flask."""
        answer = self._answer(environ)
        if answer is None:
            return self.wsgi_app(environ, start_response)
        headers, body = answer
        start_response("302 FOUND", headers)
        return [body]

    def _answer(self, environ: dict) -> tuple[list[tuple[str, str]], bytes] | None:
        """The redirect's headers and body, with its click spooled; None to leave the
        request to Flask."""
        config = self.app.config
        cookie = config["SESSION_COOKIE_NAME"] + "="
        if environ["REQUEST_METHOD"] != "GET" or cookie in environ.get("HTTP_COOKIE", ""):
            return None
        path = environ.get("PATH_INFO", "")
        slug = path[1:].lower()
        if not path.startswith("/") or not could_be_stored(slug) or slug in self._reserved_words():
            return None
        hosts = self._own_hosts(environ)
        if hosts is None:
            return None
        extensions = self.app.extensions
        target = extensions["link_cache"].peek(slug)
        if target is None:
            return None
        now = utcnow()
        resolution = link_service.resolution_of(target, own_hosts=hosts, now=now)
        salt = cached_salt(self.app, now.date())
        if resolution.outcome != "redirect" or salt is None:
            return None
        record_cached_visit(
            resolution.link_id,
            resolution.org_id,
            visit_of(environ, country_header=config["COUNTRY_HEADER"]),
            salt=salt,
            now=now,
            spool=extensions["click_spool"],
        )
        headers, body = redirect_response(resolution.destination)
        is_secure = environ["wsgi.url_scheme"] == "https"
        headers.extend(extensions["security_headers"].for_scheme(is_secure))
        return headers, body

    def _reserved_words(self) -> set[str]:
        """The slugs no link may take: our routes' first segments (read once, after every
        route is registered)."""
        if self._reserved is None:
            self._reserved = reserved_slugs(self.app.url_map)
        return self._reserved

    def _own_hosts(self, environ: dict) -> tuple[str, ...] | None:
        """The hosts a destination must not point at, as the Flask view computes them;
        None when Flask should answer (no Host header, or one it does not trust)."""
        header = environ.get("HTTP_HOST")
        if not header:
            return None
        key = (environ["wsgi.url_scheme"], header)
        if key in self._hosts:
            return self._hosts[key]
        try:
            host = get_host(environ, self.app.config["TRUSTED_HOSTS"])
        except SecurityError:
            hosts = None
        else:
            hosts = tuple(own_hosts(self.app.config.get("SHORT_BASE_URL"), host))
        if len(self._hosts) < _MAX_REMEMBERED_HOSTS:
            self._hosts[key] = hosts
        return hosts
