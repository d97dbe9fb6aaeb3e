"""The yardstick for `make bench`: the least a Flask app can do for a short link.

A dict lookup and a 302, no database; served by gunicorn with the same flags as Linkdeck
(access log included), so the ratio between the two is what Linkdeck's own work costs.
"""

# The harness starts gunicorn in bench/, so the sibling module imports without a package.
from bare_app import load_destinations
from flask import Flask, abort, redirect

app = Flask(__name__)
DESTINATIONS = load_destinations()


@app.get("/<slug>")
def follow(slug: str):
    """Redirect a known slug, 404 otherwise."""
    destination = DESTINATIONS.get(slug)
    if destination is None:
        abort(404)
    return redirect(destination, 302)
