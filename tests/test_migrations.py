"""Migrations: empty -> head -> base -> head on the run's database kind, no drift, no
row lost by any step up or down, and figures filled from the rows already there."""

import random

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import insert, inspect, text

from app import create_app
from app.database import exists_on
from app.extensions import db
from app.models import Click
from tests.conftest import TEST_SECRET_KEY, fresh_database_url
from tests.test_rollups import assert_stats_match_raw_clicks, random_clicks

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
    "user_sessions",
    "departed_members",
    "click_rollups",
    "daily_visitors",
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
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "include_object": exists_on(connection.dialect.name)},
        )
        differences = compare_metadata(context, db.metadata)
    assert differences == []


# Rows a first-release database holds; every later migration must carry them along.
SEED_SQL = [
    "INSERT INTO orgs (id, name, slug, created_at) VALUES (1, 'Acme', 'acme', :now)",
    "INSERT INTO users (id, oidc_issuer, oidc_subject, email, email_verified, created_at)"
    " VALUES (1, 'https://idp.test', 'ada', 'ada@acme.test', :yes, :now)",
    "INSERT INTO memberships (id, user_id, org_id, role, created_at)"
    " VALUES (1, 1, 1, 'owner', :now)",
    "INSERT INTO links (id, org_id, slug, destination, created_by_id, created_at, updated_at,"
    " is_active, click_count) VALUES (1, 1, 'launch', 'https://example.com/', 1, :now, :now,"
    " :yes, 1)",
    "INSERT INTO clicks (id, link_id, clicked_at, is_bot, is_internal)"
    " VALUES (1, 1, :now, :no, :no)",
]
SEEDED_TABLES = ("orgs", "users", "memberships", "links", "clicks")
SEED_VALUES = {"now": "2026-11-01 12:00:00.000000", "yes": True, "no": False}


def seed_first_release(connection) -> None:
    """Insert the rows of SEED_SQL."""
    for statement in SEED_SQL:
        connection.execute(text(statement), SEED_VALUES)


def row_counts() -> dict[str, int]:
    with db.engine.connect() as connection:
        return {
            table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608
            for table in SEEDED_TABLES
        }


def test_every_migration_keeps_the_rows_up_and_down(empty_db_app):
    from alembic.script import ScriptDirectory
    from flask_migrate import Config

    config = Config()
    config.set_main_option("script_location", empty_db_app.extensions["migrate"].directory)
    revisions = [script.revision for script in ScriptDirectory.from_config(config).walk_revisions()]
    first, *later = reversed(revisions)
    upgrade(revision=first)
    with db.engine.begin() as connection:
        seed_first_release(connection)
    seeded = dict.fromkeys(SEEDED_TABLES, 1)
    assert row_counts() == seeded

    for revision in later:
        upgrade(revision=revision)
        assert row_counts() == seeded, f"rows lost upgrading to {revision}"
    for revision in reversed([first, *later[:-1]]):
        downgrade(revision=revision)
        assert row_counts() == seeded, f"rows lost downgrading to {revision}"


def test_human_clicks_are_counted_from_the_clicks_a_database_already_holds(empty_db_app):
    upgrade(revision="876a044d4b30")
    with db.engine.begin() as connection:
        seed_first_release(connection)
        connection.execute(
            text(
                "INSERT INTO clicks (id, link_id, clicked_at, is_bot, is_internal) VALUES"
                " (2, 1, :now, :yes, :no), (3, 1, :now, :no, :yes), (4, 1, :now, :no, :no)"
            ),
            {"now": "2026-11-01 12:00:00.000000", "yes": True, "no": False},
        )

    upgrade(revision="412a0326ce3b")

    with db.engine.connect() as connection:
        human = connection.execute(text("SELECT human_click_count FROM links")).scalar_one()
    assert human == 2  # clicks 1 and 4; 2 was a bot, 3 the team's own


def test_the_rollups_are_filled_from_the_clicks_a_database_already_holds(empty_db_app):
    upgrade(revision="5f0c1a2b3c4d")
    with db.engine.begin() as connection:
        seed_first_release(connection)
        connection.execute(
            text(
                "INSERT INTO links (id, org_id, slug, destination, created_at, updated_at,"
                " is_active, click_count) VALUES (2, 1, 'second', 'https://example.com/2',"
                " :now, :now, :yes, 0), (3, 1, 'third', 'https://example.com/3', :now, :now,"
                " :yes, 0)"
            ),
            {"now": "2026-11-01 12:00:00.000000", "yes": True},
        )
        # Ids given, as the seeded click took id 1 without moving PostgreSQL's sequence.
        clicks = random_clicks(random.Random(3), [1, 2, 3], 400)
        connection.execute(
            insert(Click.__table__), [{**click, "id": n} for n, click in enumerate(clicks, 2)]
        )

    upgrade()

    assert_stats_match_raw_clicks([1, 2, 3])


def rollup_rows() -> list[tuple]:
    """Every rollup row, in key order."""
    with db.engine.connect() as connection:
        return connection.execute(
            text(
                "SELECT * FROM click_rollups ORDER BY link_id, period, dimension,"
                " bucket_start, value, is_bot, is_internal"
            )
        ).all()


def test_downgrading_the_smaller_rollups_rebuilds_the_rows_they_dropped(empty_db_app):
    upgrade(revision="5f0c1a2b3c4d")
    with db.engine.begin() as connection:
        seed_first_release(connection)
        clicks = random_clicks(random.Random(5), [1], 300)
        connection.execute(
            insert(Click.__table__), [{**click, "id": n} for n, click in enumerate(clicks, 2)]
        )
    upgrade(revision="6a1b2c3d4e5f")
    filled = rollup_rows()

    upgrade(revision="7c2d3e4f5a6b")
    assert len(rollup_rows()) < len(filled)
    downgrade(revision="6a1b2c3d4e5f")

    assert rollup_rows() == filled
