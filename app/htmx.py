"""Helpers for views that answer both full-page and htmx fragment requests."""

from urllib.parse import SplitResult, urlsplit

from flask import redirect, render_template, request


def is_partial_request() -> bool:
    """Tell whether htmx asked for a fragment.

    Boosted navigations and history restores replace the whole page, so they get the
    full page even though they carry `HX-Request`.
    """
    headers = request.headers
    return (
        headers.get("HX-Request") == "true"
        and headers.get("HX-Boosted") != "true"
        and headers.get("HX-History-Restore-Request") != "true"
    )


def render_page_or_partial(page: str, partial: str, status: int = 200, **context):
    """Render the fragment for htmx requests and the page that includes it otherwise."""
    template = partial if is_partial_request() else page
    response = render_template(template, **context), status, {"Vary": "HX-Request"}
    return response


def redirect_after_change(url: str):
    """Send the whole window to `url` after a change: HX-Redirect for htmx (its fetch would
    follow a plain redirect itself and swap the page into an element), a 302 otherwise."""
    if is_partial_request():
        return "", 204, {"HX-Redirect": url, "Vary": "HX-Request"}
    response = redirect(url)
    response.vary.add("HX-Request")
    return response


def current_page_url() -> SplitResult | None:
    """The page an htmx request was sent from (its HX-Current-URL header), split into parts.

    None when the header is missing or not a URL (`http://[` makes urlsplit raise): it is
    only a hint about what the page shows, never a reason to fail a change.
    """
    header = request.headers.get("HX-Current-URL")
    if not header:
        return None
    try:
        return urlsplit(header)
    except ValueError:
        return None
