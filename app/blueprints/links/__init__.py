"""An org's short links: the dashboard."""

from flask import Blueprint

bp = Blueprint("links", __name__)

from app.blueprints.links import views  # noqa: E402,F401  (views register routes on bp)
