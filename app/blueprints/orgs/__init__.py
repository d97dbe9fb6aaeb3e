"""Organisations: the org list, members, invitations, settings and the audit log."""

from flask import Blueprint

bp = Blueprint("orgs", __name__)

# The view modules register their routes on bp.
from app.blueprints.orgs import invitations, members, settings, views  # noqa: E402,F401
