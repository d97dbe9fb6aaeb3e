"""Organisations: the landing page, the list of my orgs, and creating one."""

from flask import Blueprint

bp = Blueprint("orgs", __name__)

from app.blueprints.orgs import views  # noqa: E402,F401  (views register routes on bp)
