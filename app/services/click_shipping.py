"""The click shipper: stores what the workers' spool files hold, exactly once, in batches.

One shipper runs per machine (dyno) beside the web workers: gunicorn starts it
(gunicorn.conf.py), `make run` starts it (bin/run-local), and the browser tests' live
server runs it in a thread. Each round takes up to CLICK_BATCH_SIZE clicks from the spool
files and, in one transaction, inserts them (COPY on PostgreSQL, a multi-row INSERT on
SQLite), adds them to each link's counters (one UPDATE for the batch on PostgreSQL), adds
them to the hourly and daily rollups, and records how far each file is now stored.
Because that position commits with the clicks, a batch that fails is simply read again
and a crash at any point neither loses nor repeats a click. A file is deleted once its
writer has closed it and all of it is stored.

A spool line holds what the click row will (see `app.services.clicks.click_record`): the
visitor hash, never the IP address or the full referrer. The shipper adds whether a
signed-in visitor belongs to the link's org, so the redirect itself needs no query.
"""

import fcntl
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from flask import Flask, current_app
from sqlalchemy import bindparam, delete, insert, select, tuple_, update

from app.database import any_array, insert_on_conflict, on_postgresql, rows_from_arrays
from app.extensions import db
from app.models import Click, ClickSpoolPosition, Link, Membership
from app.services import rollups
from app.services.click_spool import is_final, spool_directory, spool_files
from app.services.clicks import click_row

log = logging.getLogger(__name__)

# A failing round is retried after twice the wait of the one before, up to this.
MAX_RETRY_SECONDS = 5.0
# While stopping, how often to look whether the workers have closed their files.
DRAIN_POLL_SECONDS = 0.1

_CLICK_COLUMNS = (
    "link_id",
    "clicked_at",
    "referrer_host",
    "browser",
    "os",
    "device_type",
    "is_bot",
    "is_internal",
    "country",
    "visitor_hash",
)


@dataclass
class _Chunk:
    """The complete lines read from one spool file, from `start` up to byte `end`."""

    path: Path
    start: int
    end: int
    records: list[dict] = field(default_factory=list)


def ship_pending(directory: Path | None = None, *, batch_size: int | None = None) -> int:
    """Store one batch of spooled clicks; return how many clicks were read.

    Runs in an app context. Only one shipper works on a directory at a time: a second
    one waits here for the first to finish its round (so a standby shipper, or a test
    shipping by hand while a live server's shipper runs, is safe). Raises when the
    database refuses the batch; nothing is then stored and the next round reads it again.
    """
    directory = directory or spool_directory(current_app)
    batch_size = batch_size or current_app.config["CLICK_BATCH_SIZE"]
    with _shipper_lock(directory):
        files = spool_files(directory)
        if not files:
            return 0
        # Decided before reading, so a file found final is read to its real end.
        final = {path: is_final(path) for path in files}
        positions = _positions([path.name for path in files])
        chunks, budget = [], batch_size
        for path in files:
            chunk = _read(path, positions.get(path.name, 0), budget, final=final[path])
            if chunk.end > chunk.start:
                chunks.append(chunk)
                positions[path.name] = chunk.end
                budget -= len(chunk.records)
            if budget <= 0:
                break
        read = sum(len(chunk.records) for chunk in chunks)
        if chunks:
            try:
                _store(chunks)
            except Exception:
                db.session.rollback()
                raise
        _delete_shipped(directory, final, positions)
        return read


def run(
    app: Flask,
    stop: threading.Event,
    *,
    parent_pid: int | None = None,
    directory: Path | None = None,
) -> bool:
    """Ship clicks every CLICK_SHIP_INTERVAL until `stop` is set (or the parent process
    is gone), then keep shipping until every spool file is closed and stored.

    Returns True when it drained everything, False when CLICK_DRAIN_SECONDS ran out first.
    A failing round is logged and retried, waiting longer after each failure (up to 5 s).
    """
    directory = directory or spool_directory(app)
    interval = app.config["CLICK_SHIP_INTERVAL"]
    batch_size = app.config["CLICK_BATCH_SIZE"]
    draining_since = None
    failures = 0
    while True:
        read = 0
        try:
            with app.app_context():
                read = ship_pending(directory, batch_size=batch_size)
            failures = 0
        except Exception:
            failures += 1
            log.exception("event=click_ship_failed attempt=%s", failures)
        stopping = stop.is_set() or (parent_pid is not None and os.getppid() != parent_pid)
        if stopping:
            draining_since = draining_since or time.monotonic()
            # Drained: every file was closed by its writer, stored and deleted.
            if not spool_files(directory):
                log.info("event=click_shipper_drained")
                return True
            if time.monotonic() - draining_since > app.config["CLICK_DRAIN_SECONDS"]:
                left = len(spool_files(directory))
                log.error("event=click_drain_incomplete spool_files=%s", left)
                return False
            # Look again soon: stopping workers close their files any moment.
            time.sleep(DRAIN_POLL_SECONDS)
        elif failures:
            stop.wait(min(interval * 2**failures, MAX_RETRY_SECONDS))
        elif read < batch_size:
            stop.wait(interval)


@contextmanager
def _shipper_lock(directory: Path) -> Iterator[None]:
    """Hold the directory's shipper lock (waiting for another shipper's round to end)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / ".shipper.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _positions(names: list[str]) -> dict[str, int]:
    """How far each of these spool files is stored, by name (absent: nothing yet)."""
    rows = db.session.execute(
        select(ClickSpoolPosition.spool, ClickSpoolPosition.offset).where(
            ClickSpoolPosition.spool.in_(names)
        )
    ).all()
    db.session.rollback()
    return dict(rows)


def _read(path: Path, start: int, budget: int, *, final: bool) -> _Chunk:
    """Up to `budget` complete lines of a spool file from byte `start`.

    A line that does not parse (cut short when the disk filled up) is logged and skipped.
    An unfinished last line is left for later, as its writer may be writing it right now,
    unless the file is final: then it is skipped too.
    """
    chunk = _Chunk(path=path, start=start, end=start)
    with open(path, "rb") as spool:
        spool.seek(start)
        for line in spool:
            if len(chunk.records) >= budget:
                break
            if not line.endswith(b"\n"):
                if final:
                    chunk.end += len(line)
                    log.error("event=click_spool_bad_line spool=%s", path.name)
                break
            chunk.end += len(line)
            _parse_into(chunk, line)
    return chunk


def _parse_into(chunk: _Chunk, line: bytes) -> None:
    """Add one spool line's click to the chunk, or log it when it is not one."""
    try:
        record = json.loads(line)
        int(record["l"]), int(record["o"]), int(record["t"])
    except (ValueError, KeyError, TypeError):
        log.error("event=click_spool_bad_line spool=%s", chunk.path.name)
        return
    chunk.records.append(record)


def _store(chunks: list[_Chunk]) -> None:
    """Insert the chunks' clicks, count them and record the new positions: one commit."""
    records = [record for chunk in chunks for record in chunk.records]
    live = _lock_live_links({int(record["l"]) for record in records})
    pairs = {
        (record["u"], record["o"]) for record in records if "u" in record and "i" not in record
    }
    members = set()
    if pairs:
        members = set(
            db.session.execute(
                select(Membership.user_id, Membership.org_id).where(
                    tuple_(Membership.user_id, Membership.org_id).in_(pairs)
                )
            ).tuples()
        )
    rows, clicks, people = [], Counter(), Counter()
    for record in records:
        link_id = int(record["l"])
        if link_id not in live:
            # Its org was deleted between the click and now; nothing to count it on.
            continue
        internal = record.get("i")
        if internal is None:
            internal = "u" in record and (record["u"], record["o"]) in members
        row = click_row(record, internal=internal)
        rows.append(row)
        if "i" not in record:
            clicks[link_id] += 1
            if not row["is_bot"] and not row["is_internal"]:
                people[link_id] += 1
    dropped = len(records) - len(rows)
    if dropped:
        log.warning("event=clicks_of_deleted_links dropped=%s", dropped)
    if rows:
        _insert_clicks(rows)
        _count(clicks, people)
        rollups.add_clicks(rows)
    _save_positions(chunks)
    db.session.commit()


def _insert_clicks(rows: list[dict]) -> None:
    """Insert click rows: COPY on PostgreSQL (several times faster), executemany elsewhere."""
    if not on_postgresql(db.session):
        db.session.execute(insert(Click.__table__), rows)
        return
    connection = db.session.connection()
    columns = ", ".join(_CLICK_COLUMNS)
    driver = connection.connection.dbapi_connection
    with driver.cursor() as cursor, cursor.copy(f"COPY clicks ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[column] for column in _CLICK_COLUMNS])


def _lock_live_links(link_ids: set[int]) -> set[int]:
    """Of these links, those that still exist, locked until the batch commits.

    The locks are FOR NO KEY UPDATE, which the batch's counter UPDATE needs anyway (and
    which does not wait for the KEY SHARE locks that other batches' click inserts take to
    check their foreign key), in id order so two shippers (two dynos) never wait on each
    other in a circle. Deleting
    an org locks its links first (app/services/org_settings.py), so a link is either
    deleted before this batch, whose clicks on it are then dropped, or after it, together
    with everything the batch stored about it. (SQLite has one writer: no locks there.)
    """
    wanted = select(Link.id).order_by(Link.id)
    if on_postgresql(db.session):
        wanted = wanted.where(Link.id == any_array(sorted(link_ids), Link.id.type))
        wanted = wanted.with_for_update(key_share=True)
    else:
        wanted = wanted.where(Link.id.in_(link_ids))
    return set(db.session.execute(wanted).scalars())


def _count(clicks: Counter, people: Counter) -> None:
    """Add each link's new clicks to its counters (their rows locked by _lock_live_links)."""
    if not clicks:
        return
    links = Link.__table__
    names = ["id", "click_count", "human_click_count"]
    rows = [(link_id, clicks[link_id], people[link_id]) for link_id in sorted(clicks)]
    if on_postgresql(db.session):
        # One statement for the whole batch: an UPDATE per link cost 70-100 us per click
        # when clicks spread over many links.
        added, parameters = rows_from_arrays(names, rows, links).c, None
    else:
        added = {name: bindparam(f"added_{name}") for name in names}
        parameters = [
            {f"added_{name}": value for name, value in zip(names, row, strict=True)} for row in rows
        ]
    db.session.execute(
        update(links)
        .where(links.c.id == added["id"])
        .values(
            click_count=links.c.click_count + added["click_count"],
            human_click_count=links.c.human_click_count + added["human_click_count"],
            # Named, so a click does not read as an edit of the link.
            updated_at=links.c.updated_at,
        ),
        parameters,
    )


def _save_positions(chunks: list[_Chunk]) -> None:
    """Record how far each file is stored, in the batch's transaction."""
    table = ClickSpoolPosition.__table__
    upsert = insert_on_conflict(db.session, table)
    now = datetime.now(UTC)
    db.session.execute(
        upsert.on_conflict_do_update(
            index_elements=[table.c.spool],
            set_={"offset": upsert.excluded.offset, "updated_at": upsert.excluded.updated_at},
        ),
        [{"spool": chunk.path.name, "offset": chunk.end, "updated_at": now} for chunk in chunks],
    )


def _delete_shipped(directory: Path, final: dict[Path, bool], positions: dict[str, int]) -> None:
    """Delete final spool files that are stored to their end, then forget their positions.

    The file goes first: were the position forgotten first and the file left behind by a
    crash, the next round would store the file again from its start.
    """
    done = [
        path
        for path, is_done in final.items()
        if is_done and path.exists() and positions.get(path.name, 0) >= path.stat().st_size
    ]
    if not done:
        return
    for path in done:
        path.unlink(missing_ok=True)
    db.session.execute(
        delete(ClickSpoolPosition).where(ClickSpoolPosition.spool.in_([path.name for path in done]))
    )
    db.session.commit()
    log.info("event=click_spool_done spools=%s", ",".join(path.name for path in done))
