"""The yardstick for `make bench`: the least a Flask app can do for a short link.

A dict lookup and a 302, no database, no logging; served by gunicorn with the same flags
as Linkdeck, so the ratio between the two is what Linkdeck's own work costs.
"""

import os

from flask import Flask, abort, redirect

app = Flask(__name__)
DESTINATIONS = {
    f"bench{n:06d}": f"https://example.com/bench{n:06d}"
    for n in range(int(os.environ.get("BENCH_LINKS", "1000")))
}


@app.get("/<slug>")
def follow(slug: str):
    """Redirect a known slug, 404 otherwise."""
    destination = DESTINATIONS.get(slug)
    if destination is None:
        abort(404)
    return redirect(destination, 302)
