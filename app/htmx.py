"""Helpers for views that answer both full-page and htmx fragment requests."""

from flask import render_template, request


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
