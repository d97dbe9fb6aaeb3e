"""Scratch databases for the benchmarks: created per run, migrated with the app's own
migrations, seeded with plain SQL (never the ORM), and dropped at the end."""

import random
import sqlite3
import string
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
HOT_SLUG = "hot0001"
SLUG_ALPHABET = string.ascii_lowercase + string.digits
SEEDED_AT = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Database:
    """One scratch database: the URL the app gets and how to query and remove it."""

    url: str
    # The PostgreSQL maintenance database's URL, to drop this one; None for SQLite.
    admin_url: str | None = None

    @property
    def kind(self) -> str:
        """The kind of database: "postgresql" or "sqlite"."""
        return "sqlite" if self.admin_url is None else "postgresql"

    @property
    def name(self) -> str:
        """The database's name (PostgreSQL) or file (SQLite)."""
        return make_url(self.url).database

    @classmethod
    def sqlite(cls, directory: Path) -> "Database":
        """A new SQLite file in `directory`."""
        return cls(f"sqlite:///{directory / 'bench.sqlite3'}")

    @classmethod
    def postgresql(cls, base_url: str, label: str = "bench") -> "Database":
        """A new, empty database on the server `base_url` points at."""
        base = make_url(base_url).set(drivername="postgresql")
        name = f"linkdeck_{label}_{uuid.uuid4().hex[:10]}"
        admin = base.set(database="postgres").render_as_string(hide_password=False)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return cls(base.set(database=name).render_as_string(hide_password=False), admin)

    def connect(self):
        """A DB-API connection (psycopg or sqlite3) to this database."""
        if self.admin_url is None:
            return sqlite3.connect(self.name)
        return psycopg.connect(self.url)

    def scalar(self, sql: str, params: tuple = ()):
        """The first column of the first row of a query."""
        conn = self.connect()
        try:
            return conn.execute(sql, params).fetchone()[0]
        finally:
            conn.close()

    def vacuum_analyze(self) -> None:
        """Vacuum and analyze, as autovacuum would have done to a database in use."""
        conn = self.connect()
        try:
            if self.kind == "postgresql":
                conn.autocommit = True
                conn.execute("VACUUM (ANALYZE)")
            else:
                conn.execute("ANALYZE")
        finally:
            conn.close()

    def write_slugs(self, path: Path) -> None:
        """Write every link's slug to `path`, one a line (PostgreSQL)."""
        conn = self.connect()
        try:
            with path.open("wb") as out, conn.cursor().copy("COPY links (slug) TO STDOUT") as copy:
                for data in copy:
                    out.write(data)
        finally:
            conn.close()

    def drop(self) -> None:
        """Remove the database (a SQLite file goes with its temporary directory)."""
        if self.admin_url is not None:
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class MigrationFailed(SystemExit):
    """`flask db upgrade` failed; uncaught, it ends the benchmark with the migration's error."""


def migrate(env: dict[str, str], revision: str = "head") -> None:
    """Run the app's migrations up to `revision`, as the Procfile's release step does."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade", revision],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise MigrationFailed(f"flask db upgrade {revision} failed:\n{result.stderr}")


def random_slugs(count: int, seed: int = 2026) -> list[str]:
    """`count` distinct slugs: HOT_SLUG and random 8-character ones like the app makes."""
    rng = random.Random(seed)
    slugs = {HOT_SLUG}
    while len(slugs) < count:
        slugs.add("".join(rng.choices(SLUG_ALPHABET, k=8)))
    return [HOT_SLUG, *sorted(slugs - {HOT_SLUG})]


def seed_links(database: Database, slugs: list[str]) -> None:
    """One org holding one active link per slug, to https://example.com/<slug>."""
    created = _timestamp(database)
    rows = [(slug, f"https://example.com/{slug}", created) for slug in slugs]
    conn = database.connect()
    try:
        org_id = conn.execute(_ORG_INSERT[database.kind], (created,)).fetchone()[0]
        if database.kind == "postgresql":
            _copy_links(conn, org_id, rows)
        else:
            conn.executemany(
                "INSERT INTO links (org_id, slug, destination, created_at, updated_at,"
                " is_active, click_count, human_click_count, version)"
                " VALUES (?, ?, ?, ?, ?, 1, 0, 0, 0)",
                [(org_id, slug, destination, at, at) for slug, destination, at in rows],
            )
        conn.commit()
    finally:
        conn.close()


_ORG_INSERT = {
    "sqlite": "INSERT INTO orgs (name, slug, created_at, allow_private_destinations)"
    " VALUES ('Bench', 'bench', ?, 0) RETURNING id",
    "postgresql": "INSERT INTO orgs (name, slug, created_at, allow_private_destinations)"
    " VALUES ('Bench', 'bench', %s, false) RETURNING id",
}


def _copy_links(conn, org_id: int, rows) -> None:
    """Load (slug, destination, created_at) rows into PostgreSQL with COPY."""
    columns = "org_id, slug, destination, created_at, updated_at, is_active, click_count"
    with conn.cursor().copy(f"COPY links ({columns}) FROM STDIN") as copy:
        for slug, destination, created_at in rows:
            copy.write_row((org_id, slug, destination, created_at, created_at, True, 0))


def _timestamp(database: Database):
    """SEEDED_AT as the driver stores it (SQLAlchemy's SQLite text format on SQLite)."""
    if database.kind == "sqlite":
        return SEEDED_AT.strftime("%Y-%m-%d %H:%M:%S.%f")
    return SEEDED_AT
