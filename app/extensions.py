"""Unbound extension instances; `create_app` binds them to an app.

Authlib's OAuth registry is the exception: it binds a single app and caches its clients,
so `create_app` gives every app a registry of its own (see `register_extensions`).
"""

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from app.ratelimits import MissLimiter

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
# Keyed by client IP (the socket peer, or with TRUSTED_PROXIES the visitor's address the
# router forwarded); views that limit per person pass their own key.
limiter = Limiter(key_func=get_remote_address)
# Unknown short links per client IP, counted only when a request missed (see app.ratelimits).
unknown_slug_limiter = MissLimiter("unknown_slugs", limit_setting="UNKNOWN_SLUG_LIMIT")
