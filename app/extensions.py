"""Unbound extension instances; `create_app` binds them to an app.

Authlib's OAuth registry is the exception: it binds a single app and caches its clients,
so `create_app` gives every app a registry of its own (see `register_extensions`).
"""

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from app.ratelimits import RateLimit

# Stable constraint names, so Alembic can alter and drop them on SQLite and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
# Unknown short links per client IP, counted only when a request missed (see app.ratelimits).
unknown_slug_limiter = RateLimit("unknown_slugs", limit_setting="UNKNOWN_SLUG_LIMIT")
# Links created per person.
link_create_limiter = RateLimit("link_creates", limit_setting="LINK_CREATE_LIMIT")
