"""CSV exports of an org's links and a link's clicks, streamed and safe to open in a
spreadsheet: every field is quoted and formulas are defused."""

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from sqlalchemy import case, func

from app.extensions import db
from app.models import Click, Link, User

CSV_CONTENT_TYPE = "text/csv; charset=utf-8"
# Spreadsheets run a cell starting with one of these as a formula (OWASP "CSV Injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Rows fetched per round trip: exports stream, so memory stays flat for big links.
_BATCH_SIZE = 1000

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


def csv_cell(value: object) -> str:
    """Write one value as CSV text: booleans true/false, times ISO 8601 UTC, formulas defused."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


def links_csv_rows(org_id: int, short_base_url: str) -> Iterator[tuple]:
    """The org's links (not deleted ones), oldest first, after a header row."""
    yield LINK_COLUMNS
    live = (Link.org_id == org_id, Link.deleted_at.is_(None))
    # One grouped count joined in, so the export stays one streamed query.
    kinds = (
        db.select(
            Click.link_id,
            func.count(case((Click.is_bot, 1))).label("bots"),
            func.count(case((Click.is_internal, 1))).label("internal"),
        )
        .join(Link, Click.link_id == Link.id)
        .where(*live)
        .group_by(Click.link_id)
        .subquery()
    )
    query = (
        db.select(
            Link,
            User.email,
            func.coalesce(kinds.c.bots, 0),
            func.coalesce(kinds.c.internal, 0),
        )
        .outerjoin(User, Link.created_by_id == User.id)
        .outerjoin(kinds, kinds.c.link_id == Link.id)
        .where(*live)
        .order_by(Link.created_at, Link.id)
        .execution_options(yield_per=_BATCH_SIZE)
    )
    for link, creator_email, bot_clicks, internal_clicks in db.session.execute(query):
        yield (
            link.slug,
            f"{short_base_url}/{link.slug}",
            link.destination,
            link.title,
            creator_email,
            link.created_at,
            link.is_active,
            link.expires_at,
            link.max_clicks,
            link.click_count,
            link.human_click_count,
            bot_clicks,
            internal_clicks,
        )


def clicks_csv_rows(link_id: int) -> Iterator[tuple]:
    """One row per click on the link, oldest first, after a header row."""
    yield CLICK_COLUMNS
    query = (
        db.select(
            Click.clicked_at,
            Click.referrer_host,
            Click.browser,
            Click.os,
            Click.device_type,
            Click.is_bot,
            Click.is_internal,
            Click.country,
        )
        .where(Click.link_id == link_id)
        .order_by(Click.clicked_at, Click.id)
        .execution_options(yield_per=_BATCH_SIZE)
    )
    yield from db.session.execute(query).tuples()


def csv_lines(rows: Iterable[Iterable[object]]) -> Iterator[str]:
    """Turn rows into CSV text, one line at a time, for a streamed response.

    Every field is quoted: a spreadsheet that splits on semicolons (the default where the
    comma is the decimal mark) then still reads `x;=HYPERLINK(...)` as one text cell.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    for row in rows:
        writer.writerow([csv_cell(value) for value in row])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
