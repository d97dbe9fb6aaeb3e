"""The floor for `make bench`: a bare WSGI callable that answers a short link with a 302.

The same dict lookup as bench/minimal_app.py without Flask, so the two anchors together
show what the server and the framework cost before Linkdeck does any work of its own.
"""

import os
from pathlib import Path


def load_destinations() -> dict[str, str]:
    """Every slug of the benchmark's links (BENCH_SLUG_FILE, one a line) and its destination."""
    lines = Path(os.environ["BENCH_SLUG_FILE"]).read_text().split()
    return {slug: f"https://example.com/{slug}" for slug in lines}


DESTINATIONS = load_destinations()


def app(environ, start_response):
    """Redirect a known slug, 404 otherwise."""
    destination = DESTINATIONS.get(environ.get("PATH_INFO", "/")[1:])
    if destination is None:
        start_response("404 NOT FOUND", [("Content-Type", "text/plain"), ("Content-Length", "0")])
        return [b""]
    start_response("302 FOUND", [("Location", destination), ("Content-Length", "0")])
    return [b""]
