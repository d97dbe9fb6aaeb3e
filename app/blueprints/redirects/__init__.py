"""Public endpoints: the health check and (registered last) the short-link redirect."""

from flask import Blueprint

bp = Blueprint("redirects", __name__)

from app.blueprints.redirects import views  # noqa: E402,F401  (views register routes on bp)
