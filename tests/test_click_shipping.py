"""Clicks travel from a worker's spool file to the database exactly once, whatever dies.

The writers here are real processes using the app's ClickSpool, stopped gracefully or
killed with SIGKILL; the shipper is the app's own `ship_pending`, as the shipper process
runs it.
"""

import contextlib
import logging
import random
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from sqlalchemy import func
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from app.extensions import db
from app.models import Click, ClickRollup, ClickSpoolPosition, DailyVisitor, Link, Membership
from app.services.click_shipping import ship_pending
from app.services.click_spool import ClickSpool, spool_directory, spool_files
from app.services.clicks import VisitDetails, click_record
from app.services.org_settings import delete_org
from tests.click_factories import make_link
from tests.conftest import run_at_once
from tests.link_helpers import shipped

ROOT = Path(__file__).resolve().parents[1]

# A worker process in miniature: appends clicks to its spool when told, says so, waits.
WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from app.services.click_spool import ClickSpool
    from app.services.clicks import VisitDetails, click_record

    spool = ClickSpool(sys.argv[1], max_file_bytes=1 << 20)
    link_id, org_id = int(sys.argv[2]), int(sys.argv[3])
    details = VisitDetails(
        browser="Chrome", os="Windows", device_type="desktop", is_bot=False,
        referrer_host="news.example", country="DE", visitor_hash="f" * 64,
    )
    for command in sys.stdin:
        action, _, count = command.strip().partition(" ")
        if action == "close":
            spool.close()
            break
        for _ in range(int(count)):
            spool.append(click_record(
                link_id=link_id, org_id=org_id, clicked_at=datetime.now(UTC),
                details=details, user_id=None,
            ))
        print("written", flush=True)
    """
)


class Writer:
    """A separate process appending clicks for one link to the app's spool directory."""

    def __init__(self, directory: Path, link):
        self.process = subprocess.Popen(  # noqa: S603  (our interpreter, our code)
            [sys.executable, "-c", WRITER, str(directory), str(link.id), str(link.org_id)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def write(self, count: int) -> None:
        """Append `count` clicks and return once they are written."""
        self.process.stdin.write(f"write {count}\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline() == "written\n"

    def close_and_exit(self) -> None:
        """Close the spool file and exit normally, as a worker stopped by gunicorn does."""
        self.process.stdin.write("close\n")
        self.process.stdin.flush()
        assert self.process.wait(10) == 0
        self._close_pipes()

    def kill(self) -> None:
        """SIGKILL the writer, as the OOM killer or a stuck-worker timeout would."""
        self.process.kill()
        self.process.wait(10)
        self._close_pipes()

    def _close_pipes(self) -> None:
        """Close our ends of its stdin and stdout."""
        self.process.stdin.close()
        self.process.stdout.close()


@pytest.fixture
def link(app):
    """A link's ids (an org with one owner and the link)."""
    with app.app_context():
        link = make_link("spooled")
        return SimpleNamespace(id=link.id, org_id=link.org_id)


@pytest.fixture
def writer(app, link):
    writer = Writer(spool_directory(app), link)
    yield writer
    if writer.process.poll() is None:
        writer.kill()


def stored(app, link) -> tuple[int, int, int]:
    """Click rows of the link, its click counter and its people counter."""
    with app.app_context():
        rows = db.session.execute(
            db.select(func.count(Click.id)).filter_by(link_id=link.id)
        ).scalar_one()
        counters = db.session.execute(
            db.select(Link.click_count, Link.human_click_count).filter_by(id=link.id)
        ).one()
        return rows, *counters


def positions(app) -> list[str]:
    with app.app_context():
        return list(db.session.execute(db.select(ClickSpoolPosition.spool)).scalars())


def test_clicks_of_a_worker_killed_with_sigkill_are_all_stored_once(app, link, writer):
    writer.write(30)
    shipped(app)
    assert stored(app, link) == (30, 30, 30)
    # The writer may still append, so its file stays, with its position.
    assert len(spool_files(spool_directory(app))) == 1
    assert len(positions(app)) == 1

    writer.write(20)
    writer.kill()
    shipped(app)
    shipped(app)  # a later round, as after a restart, stores nothing twice

    assert stored(app, link) == (50, 50, 50)
    assert spool_files(spool_directory(app)) == []
    assert positions(app) == []


def test_clicks_of_a_worker_stopped_gracefully_are_all_stored_and_its_file_removed(
    app, link, writer
):
    writer.write(25)
    writer.close_and_exit()
    shipped(app)

    assert stored(app, link) == (25, 25, 25)
    assert spool_files(spool_directory(app)) == []
    with app.app_context():
        click = db.session.execute(db.select(Click).filter_by(link_id=link.id)).scalars().first()
    assert (click.browser, click.os, click.device_type, click.referrer_host, click.country) == (
        "Chrome",
        "Windows",
        "desktop",
        "news.example",
        "DE",
    )
    assert click.visitor_hash == "f" * 64


@contextlib.contextmanager
def database_write_locked(database_url: str, link):
    """Hold a lock another connection's write of the link must wait for, as a long
    transaction elsewhere would: the link's row on PostgreSQL, the database on SQLite."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        connection = sqlite3.connect(url.database, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
    else:
        connection = psycopg.connect(url.set(drivername="postgresql").render_as_string(False))
        connection.execute("SELECT id FROM links WHERE id = %s FOR UPDATE", (link.id,))
    try:
        yield
    finally:
        connection.rollback()
        connection.close()


def test_a_batch_that_fails_is_stored_whole_on_the_next_round_without_duplicates(
    make_app, app, database_url, link, writer, caplog
):
    shipper = make_app(DATABASE_LOCK_TIMEOUT_MS=200)
    writer.write(40)
    writer.close_and_exit()

    with (
        database_write_locked(database_url, link),
        shipper.app_context(),
        # SQLAlchemy wraps the DBAPI error; COPY on PostgreSQL raises psycopg's own.
        pytest.raises((OperationalError, psycopg.errors.LockNotAvailable), match="lock"),
    ):
        ship_pending()
    assert stored(app, link) == (0, 0, 0)
    assert len(spool_files(spool_directory(app))) == 1

    shipped(shipper)
    assert stored(app, link) == (40, 40, 40)
    assert spool_files(spool_directory(app)) == []


def test_a_torn_line_is_skipped_and_logged_and_the_rest_stored(app, link, writer, caplog):
    writer.write(3)
    writer.close_and_exit()
    [spool] = spool_files(spool_directory(app))
    link_id = str(link.id).encode()
    with open(spool, "ab") as file:
        # What a write cut short by a full disk leaves, a good line, something that is
        # not a click, and a last line its writer never finished.
        file.write(b'{"l":' + link_id + b',"o":1,"t":17\n')
        file.write(b'{"l":' + link_id + b',"o":1,"t":1764633600000000}\n')
        file.write(b'{"l": "not a click"}\n')
        file.write(b'{"l":' + link_id + b',"o":1,"t"')

    with caplog.at_level(logging.ERROR, logger="app.services.click_shipping"):
        shipped(app)

    assert stored(app, link) == (4, 4, 4)
    assert [record.message.split()[0] for record in caplog.records] == [
        "event=click_spool_bad_line"
    ] * 3
    assert spool_files(spool_directory(app)) == []


def test_clicks_of_a_link_whose_org_was_deleted_meanwhile_are_dropped_not_retried(
    app, link, writer, caplog
):
    writer.write(5)
    writer.close_and_exit()
    with app.app_context():
        db.session.execute(db.delete(Link).filter_by(id=link.id))
        db.session.commit()

    with caplog.at_level(logging.WARNING, logger="app.services.click_shipping"):
        shipped(app)

    assert "event=clicks_of_deleted_links dropped=5" in caplog.text
    assert spool_files(spool_directory(app)) == []
    with app.app_context():
        assert db.session.execute(db.select(func.count(Click.id))).scalar_one() == 0


def spool_clicks(app, link_ids: list[int], org_id_of: dict[int, int]) -> None:
    """Append one anonymous click per entry of `link_ids` to a spool file of `app`'s."""
    spool = ClickSpool(spool_directory(app), max_file_bytes=1 << 20)
    details = VisitDetails(
        browser="Chrome",
        os="Windows",
        device_type="desktop",
        is_bot=False,
        referrer_host=None,
        country=None,
        visitor_hash=None,
    )
    for n, link_id in enumerate(link_ids):
        spool.append(
            click_record(
                link_id=link_id,
                org_id=org_id_of[link_id],
                clicked_at=datetime.now(UTC),
                details=replace(details, visitor_hash=f"{n % 40:064x}"),
                user_id=None,
            )
        )
    spool.close()


def ship_everything(app) -> None:
    with app.app_context():
        while ship_pending(batch_size=50):
            pass


def test_two_shippers_at_once_count_every_click_on_the_links_they_share(
    app, make_app, postgres_only, tmp_path
):
    with app.app_context():
        links = [make_link(f"shared{n}") for n in range(20)]
        org_id_of = {link.id: link.org_id for link in links}
    other = make_app(CLICK_SPOOL_DIR=str(tmp_path / "other-dyno"))
    rng = random.Random(11)
    # Each dyno's batches touch the same links in their own order, round after round.
    mine = [rng.choice(list(org_id_of)) for _ in range(600)]
    theirs = [rng.choice(list(org_id_of)) for _ in range(600)]
    spool_clicks(app, mine, org_id_of)
    spool_clicks(other, theirs, org_id_of)

    run_at_once(partial(ship_everything, app), partial(ship_everything, other))

    expected = Counter(mine + theirs)
    with app.app_context():
        counters = dict(db.session.execute(db.select(Link.id, Link.click_count)).all())
    assert counters == {link_id: expected[link_id] for link_id in org_id_of}


def delete_org_of(app, link_id: int) -> None:
    """Delete the link's org as its owner would, on `app`'s own connection."""
    with app.app_context():
        org_id = db.session.get(Link, link_id).org_id
        owner = db.session.execute(db.select(Membership).filter_by(org_id=org_id)).scalar_one()
        delete_org(owner, owner.org.name)
        db.session.commit()


def test_an_org_deleted_while_its_clicks_ship_leaves_none_of_their_rows(
    app, make_app, postgres_only
):
    with app.app_context():
        first = make_link("doomed0")
        links = [first] + [
            Link(org_id=first.org_id, slug=f"doomed{n}", destination="https://example.com/")
            for n in range(1, 10)
        ]
        db.session.add_all(links[1:])
        db.session.commit()
        org_id_of = {link.id: link.org_id for link in links}
    rng = random.Random(5)
    spool_clicks(app, [rng.choice(list(org_id_of)) for _ in range(1000)], org_id_of)
    deleter = make_app()

    run_at_once(partial(ship_everything, app), partial(delete_org_of, deleter, first.id))

    with app.app_context():
        assert db.session.execute(db.select(func.count(Link.id))).scalar_one() == 0
        for model in (Click, ClickRollup, DailyVisitor):
            assert db.session.execute(db.select(func.count()).select_from(model)).scalar_one() == 0
    assert spool_files(spool_directory(app)) == []
