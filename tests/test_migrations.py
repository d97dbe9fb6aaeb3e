"""Migrations: empty -> head -> base -> head on the run's database kind, and no drift."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from app import create_app
from app.extensions import db
from tests.conftest import TEST_SECRET_KEY, fresh_database_url

APP_TABLES = {
    "users",
    "orgs",
    "memberships",
    "links",
    "link_changes",
    "clicks",
    "invitations",
    "audit_events",
    "retired_slugs",
}


@pytest.fixture
def empty_db_app(tmp_path):
    with fresh_database_url(tmp_path) as url:
        app = create_app(
            {"TESTING": True, "SECRET_KEY": TEST_SECRET_KEY, "SQLALCHEMY_DATABASE_URI": url}
        )
        with app.app_context():
            yield app
            db.session.remove()
            db.engine.dispose()


def table_names() -> set[str]:
    return set(inspect(db.engine).get_table_names())


def test_upgrade_downgrade_upgrade(empty_db_app):
    upgrade()
    assert table_names() >= APP_TABLES
    downgrade(revision="base")
    assert table_names() & APP_TABLES == set()
    upgrade()
    assert table_names() >= APP_TABLES


def test_migrations_have_a_single_head(empty_db_app):
    from alembic.script import ScriptDirectory
    from flask_migrate import Config

    directory = empty_db_app.extensions["migrate"].directory
    config = Config()
    config.set_main_option("script_location", directory)
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1


def test_models_and_migrations_do_not_drift(empty_db_app):
    upgrade()
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, db.metadata)
    assert differences == []
