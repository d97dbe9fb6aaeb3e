"""CSV exports of an org's links and a link's clicks, streamed and safe to open in a
spreadsheet: every field is quoted and formulas are defused.

An export of any length streams to its end. Rows come in chunks cut by a keyset on
(time, id), each chunk one short statement in a transaction of its own: no statement
meets the database's statement_timeout, no snapshot is held while the file downloads, and
memory holds one chunk at most. After each chunk the worker tells gunicorn it is alive
(app/worker_heartbeat.py), so gunicorn's --timeout does not apply; the caller's
`timeout_seconds` (EXPORT_TIMEOUT_SECONDS in the views) does.
"""

import csv
import io
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime

from sqlalchemy import BigInteger, ScalarSelect, cast, func, or_

from app.extensions import db
from app.models import Click, ClickRollup, Link, User
from app.worker_heartbeat import beat

log = logging.getLogger(__name__)

CSV_CONTENT_TYPE = "text/csv; charset=utf-8"
# Spreadsheets run a cell starting with one of these as a formula (OWASP "CSV Injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Rows per query: few round trips, yet each statement is quick and a chunk is small in memory.
CHUNK_SIZE = 2000
# The server writes each piece of a streamed body with its own system call (and chunk
# header): a piece per line would cost a million writes for a million clicks.
_PIECE_CHARS = 64 * 1024

LINK_COLUMNS = (
    "slug",
    "short_url",
    "destination",
    "title",
    "created_by",
    "created_at",
    "is_active",
    "expires_at",
    "max_clicks",
    # Every recorded click; human_clicks is what the dashboard shows and max_clicks limits.
    "click_count",
    "human_clicks",
    # Counted like the is_bot and is_internal columns of the clicks export, so a click by
    # a team member's link preview is in both.
    "bot_clicks",
    "internal_clicks",
)
# No IP (never stored) and no visitor hash: an export leaves the org and must not
# let anyone link visits together.
CLICK_COLUMNS = (
    "clicked_at",
    "referrer_host",
    "browser",
    "os",
    "device",
    "is_bot",
    "is_internal",
    "country",
)
_CLICK_FIELDS = (
    Click.clicked_at,
    Click.referrer_host,
    Click.browser,
    Click.os,
    Click.device_type,
    Click.is_bot,
    Click.is_internal,
    Click.country,
)

# Where a chunk ended: the (time, id) of its last row, which the next chunk starts after.
Position = tuple[datetime, int]


def csv_cell(value: object) -> str:
    """Write one value as CSV text: booleans true/false, times ISO 8601 UTC, formulas defused."""
    # Text first: most cells of a big export are text.
    if isinstance(value, str):
        text = value
    elif value is None:
        return ""
    elif isinstance(value, bool):
        return "true" if value else "false"
    elif isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    elif isinstance(value, int):
        return str(value)
    else:
        text = str(value)
    if text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


def links_csv_rows(
    org_id: int,
    short_base_url: str,
    *,
    timeout_seconds: float | None = None,
    chunk_size: int = CHUNK_SIZE,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[tuple]:
    """The org's links (not deleted ones), oldest first, after a header row.

    Stops early, logging event=export_cut_off, once it has run `timeout_seconds`.
    """
    yield LINK_COLUMNS

    def fetch(after: Position | None) -> list[tuple[Position, tuple]]:
        """The next chunk of the org's live links and their bot and internal clicks."""
        query = (
            db.select(
                # LINK_COLUMNS but short_url, which is made here, then the link's position.
                Link.slug,
                Link.destination,
                Link.title,
                User.email,
                Link.created_at,
                Link.is_active,
                Link.expires_at,
                Link.max_clicks,
                Link.click_count,
                Link.human_click_count,
                _rolled_up_clicks(ClickRollup.is_bot),
                _rolled_up_clicks(ClickRollup.is_internal),
                Link.created_at,
                Link.id,
            )
            .outerjoin(User, Link.created_by_id == User.id)
            .where(Link.org_id == org_id, Link.deleted_at.is_(None))
        )
        if after is not None:
            query = query.where(*_after(Link.created_at, Link.id, after))
        rows = db.session.execute(query.order_by(Link.created_at, Link.id).limit(chunk_size))
        return [
            ((created_at, link_id), (slug, f"{short_base_url}/{slug}", *columns))
            for slug, *columns, created_at, link_id in rows.tuples()
        ]

    yield from _in_chunks(
        fetch,
        f"export=links org_id={org_id}",
        timeout_seconds=timeout_seconds,
        chunk_size=chunk_size,
        clock=clock,
    )


def _rolled_up_clicks(kind) -> ScalarSelect:
    """The link's clicks of one kind (`ClickRollup.is_bot` or `.is_internal`) over all time.

    A subquery per row reads the link's few all-time rollup rows by their key, so a chunk
    costs its own links' lookups, however many clicks or days they have.
    """
    total = func.coalesce(func.sum(ClickRollup.clicks), 0)
    return (
        db.select(cast(total, BigInteger))
        .where(
            ClickRollup.link_id == Link.id,
            ClickRollup.period == "all",
            ClickRollup.dimension == "total",
            kind,
        )
        .scalar_subquery()
    )


def clicks_csv_rows(
    link_id: int,
    *,
    timeout_seconds: float | None = None,
    chunk_size: int = CHUNK_SIZE,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[tuple]:
    """One row per click on the link, oldest first, after a header row.

    Stops early, logging event=export_cut_off, once it has run `timeout_seconds`.
    """
    yield CLICK_COLUMNS

    def fetch(after: Position | None) -> list[tuple[Position, tuple]]:
        """The next chunk of the link's clicks."""
        query = db.select(*_CLICK_FIELDS, Click.id).where(Click.link_id == link_id)
        if after is not None:
            query = query.where(*_after(Click.clicked_at, Click.id, after))
        rows = db.session.execute(
            query.order_by(Click.clicked_at, Click.id).limit(chunk_size)
        ).tuples()
        return [
            ((clicked_at, click_id), (clicked_at, *columns))
            for clicked_at, *columns, click_id in rows
        ]

    yield from _in_chunks(
        fetch,
        f"export=clicks link_id={link_id}",
        timeout_seconds=timeout_seconds,
        chunk_size=chunk_size,
        clock=clock,
    )


def _after(at_column, id_column, after: Position) -> list:
    """The conditions of rows after `after` in (time, id) order.

    The first is implied by the second, but it is the one an index on (…, time) can
    start its scan at.
    """
    at, row_id = after
    return [at_column >= at, or_(at_column > at, id_column > row_id)]


def _in_chunks(
    fetch: Callable[[Position | None], list[tuple[Position, tuple]]],
    export: str,
    *,
    timeout_seconds: float | None,
    chunk_size: int,
    clock: Callable[[], float],
) -> Iterator[tuple]:
    """The rows of chunk after chunk from `fetch`, until a short chunk or the time limit.

    `fetch(after)` returns up to `chunk_size` (position, row) pairs past `after` (None: from
    the start). `export` names the export in the log line of a cut-off.
    """
    started = clock()
    sent = 0
    after = None
    while True:
        chunk = fetch(after)
        # An export only reads, so a rollback ends the chunk's transaction without risk:
        # no snapshot or connection is held while the rows travel to the client.
        db.session.rollback()
        for _position, row in chunk:
            yield row
        sent += len(chunk)
        beat()
        if len(chunk) < chunk_size:
            return
        elapsed = clock() - started
        if timeout_seconds is not None and elapsed >= timeout_seconds:
            log.warning(
                "event=export_cut_off %s rows=%d seconds=%.1f limit_seconds=%s",
                export,
                sent,
                elapsed,
                timeout_seconds,
            )
            return
        after = chunk[-1][0]


def csv_lines(rows: Iterable[Iterable[object]]) -> Iterator[str]:
    """Turn rows into CSV text for a streamed response, whole lines in pieces of about
    `_PIECE_CHARS` characters.

    Every field is quoted: a spreadsheet that splits on semicolons (the default where the
    comma is the decimal mark) then still reads `x;=HYPERLINK(...)` as one text cell.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    for row in rows:
        writer.writerow([csv_cell(value) for value in row])
        if buffer.tell() >= _PIECE_CHARS:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()
