"""CSV exports: header first, one row per click, no IPs or hashes, every field quoted and
formulas defused; streamed in chunks to the end, or to EXPORT_TIMEOUT_SECONDS."""

import csv
import io
import logging
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from app import worker_heartbeat
from app.extensions import db
from app.models import Click, Link
from app.services.exports import (
    CHUNK_SIZE,
    CLICK_COLUMNS,
    LINK_COLUMNS,
    clicks_csv_rows,
    csv_cell,
    csv_lines,
    links_csv_rows,
)
from tests.click_factories import add_click, make_link, visit
from tests.link_helpers import create_link, link_row

NOW = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)
# A CSV body in which every field, the header's too, is in double quotes.
ALL_QUOTED = re.compile(rb'(?:"(?:[^"]|"")*"(?:,"(?:[^"]|"")*")*\r\n)+')
SEMICOLON_FORMULA = 'x;=HYPERLINK("http://evil.test","x")'


def parse(lines) -> list[list[str]]:
    return list(csv.reader(io.StringIO("".join(lines))))


class Clock:
    """A monotonic clock a test moves by hand: each reading returns the next of `readings`."""

    def __init__(self, *readings: float):
        self.readings = iter(readings)

    def __call__(self) -> float:
        return next(self.readings)


class GunicornWorker:
    """Stands in for the gunicorn worker this process runs as, counting its heartbeats."""

    def __init__(self):
        self.heartbeats = 0

    def notify(self) -> None:
        self.heartbeats += 1


@pytest.fixture
def gunicorn_worker():
    """The worker app.worker_heartbeat reports to during the test, as under gunicorn."""
    worker = GunicornWorker()
    worker_heartbeat.remember(worker)
    yield worker
    worker_heartbeat.remember(None)


def cut_offs(caplog) -> list[str]:
    """The export_cut_off lines the exports logged."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "app.services.exports" and "event=export_cut_off" in record.getMessage()
    ]


# Cells and lines --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("plain text", "plain text"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (True, "true"),
        (False, "false"),
        (42, "42"),
        (-3, "-3"),
        (NOW, "2026-11-23T14:30:00Z"),
        (
            datetime(2026, 11, 23, 16, 30, tzinfo=timezone(timedelta(hours=2))),
            "2026-11-23T14:30:00Z",
        ),
    ],
)
def test_csv_cell(value, cell):
    assert csv_cell(value) == cell


def test_csv_lines_quote_commas_quotes_and_newlines():
    lines = list(csv_lines([("a,b", 'say "hi"', "two\nlines")]))
    assert lines == ['"a,b","say ""hi""","two\nlines"\r\n']
    assert parse(lines) == [["a,b", 'say "hi"', "two\nlines"]]


def test_csv_lines_quote_every_field_empty_numbers_and_booleans_too():
    lines = list(csv_lines([("plain", None, 3, True, SEMICOLON_FORMULA)]))
    assert lines == ['"plain","","3","true","x;=HYPERLINK(""http://evil.test"",""x"")"\r\n']


def test_csv_lines_send_many_rows_in_few_pieces_of_whole_lines():
    rows = [(f"row {n}", "x" * 100) for n in range(5000)]
    pieces = list(csv_lines(rows))
    assert 1 < len(pieces) < 50
    assert all(piece.endswith("\r\n") for piece in pieces)
    assert parse(pieces) == [[f"row {n}", "x" * 100] for n in range(5000)]


# The clicks export ------------------------------------------------------------------------


def test_clicks_export_has_a_header_and_one_row_per_click(app):
    with app.app_context():
        link = make_link()
        add_click(link, NOW, referrer_host="mail.example", country="DE", is_internal=True)
        add_click(link, NOW - timedelta(hours=1), is_bot=True, device_type="bot", browser="curl")
        db.session.commit()

        rows = parse(csv_lines(clicks_csv_rows(link.id)))
    assert rows[0] == list(CLICK_COLUMNS)
    assert rows[0][:7] == [
        "clicked_at",
        "referrer_host",
        "browser",
        "os",
        "device",
        "is_bot",
        "is_internal",
    ]
    assert rows[1:] == [
        ["2026-11-23T13:30:00Z", "", "curl", "Windows", "bot", "true", "false", ""],
        [
            "2026-11-23T14:30:00Z",
            "mail.example",
            "Chrome",
            "Windows",
            "desktop",
            "false",
            "true",
            "DE",
        ],
    ]


def test_clicks_export_leaves_out_visitor_hashes(app):
    with app.app_context():
        link = make_link()
        add_click(link, NOW, visitor_hash="f" * 64)
        db.session.commit()

        text = "".join(csv_lines(clicks_csv_rows(link.id)))
    assert "f" * 64 not in text
    assert "visitor" not in text


def test_clicks_export_of_one_link_has_no_other_links_clicks(app):
    with app.app_context():
        link = make_link("abc")
        add_click(make_link("xyz"), NOW)
        db.session.commit()

        assert parse(csv_lines(clicks_csv_rows(link.id))) == [list(CLICK_COLUMNS)]


def test_clicks_export_sends_every_click_once_in_time_order_across_chunks(app):
    with app.app_context():
        link = make_link()
        # Stored out of time order; five clicks share one instant, across chunk boundaries.
        add_click(link, NOW + timedelta(minutes=1), referrer_host="last.example")
        for n in range(5):
            add_click(link, NOW, referrer_host=f"tie-{n}.example")
        add_click(link, NOW - timedelta(minutes=1), referrer_host="second.example")
        add_click(link, NOW - timedelta(minutes=2), referrer_host="first.example")
        db.session.commit()

        rows = parse(csv_lines(clicks_csv_rows(link.id, chunk_size=2)))
    assert [row[1] for row in rows] == [
        "referrer_host",
        "first.example",
        "second.example",
        *(f"tie-{n}.example" for n in range(5)),
        "last.example",
    ]
    assert [row[0] for row in rows[3:8]] == ["2026-11-23T14:30:00Z"] * 5


def test_clicks_export_tells_gunicorn_the_worker_is_alive_after_every_chunk(app, gunicorn_worker):
    with app.app_context():
        link = make_link()
        for second in range(5):
            add_click(link, NOW + timedelta(seconds=second))
        db.session.commit()

        rows = parse(csv_lines(clicks_csv_rows(link.id, chunk_size=2)))
    assert len(rows) == 6
    assert gunicorn_worker.heartbeats == 3


def test_clicks_export_holds_no_transaction_while_its_rows_are_sent(app):
    with app.app_context():
        link = make_link()
        add_click(link, NOW)
        db.session.commit()
        rows = clicks_csv_rows(link.id)

        assert next(rows) == CLICK_COLUMNS
        assert next(rows)[0] == NOW
        assert not db.session().in_transaction()


def test_an_export_out_of_time_stops_after_the_chunk_in_flight_and_says_so(app, caplog):
    caplog.set_level(logging.WARNING)
    with app.app_context():
        link = make_link()
        link_id = link.id
        for second in range(10):
            add_click(link, NOW + timedelta(seconds=second))
        db.session.commit()
        # Started at 0; 10 s in after the first chunk, 700 s in after the second.
        clock = Clock(0, 10, 700)

        rows = parse(
            csv_lines(clicks_csv_rows(link_id, timeout_seconds=600, chunk_size=2, clock=clock))
        )
    assert [row[0] for row in rows] == [
        "clicked_at",
        "2026-11-23T14:30:00Z",
        "2026-11-23T14:30:01Z",
        "2026-11-23T14:30:02Z",
        "2026-11-23T14:30:03Z",
    ]
    assert cut_offs(caplog) == [
        f"event=export_cut_off export=clicks link_id={link_id} rows=4 seconds=700.0"
        " limit_seconds=600"
    ]


def test_an_export_within_its_time_is_not_cut_off(app, caplog):
    caplog.set_level(logging.WARNING)
    with app.app_context():
        link = make_link()
        for second in range(4):
            add_click(link, NOW + timedelta(seconds=second))
        db.session.commit()

        rows = parse(
            csv_lines(
                clicks_csv_rows(link.id, timeout_seconds=600, chunk_size=2, clock=Clock(0, 1, 2))
            )
        )
    assert len(rows) == 5
    assert cut_offs(caplog) == []


# The links export -------------------------------------------------------------------------


def test_links_export_lists_the_orgs_live_links_with_formulas_defused(app):
    with app.app_context():
        link = make_link(
            "abc",
            destination="https://example.com/a",
            title='=HYPERLINK("http://evil","x")',
            click_count=7,
            human_click_count=4,
        )
        add_click(link, NOW, is_bot=True)
        add_click(link, NOW, is_bot=True, is_internal=True)
        add_click(link, NOW, is_internal=True)
        add_click(make_link("xyz"), NOW, is_bot=True)
        db.session.add(
            Link(org_id=link.org_id, slug="gone", destination="https://x.test/", deleted_at=NOW)
        )
        db.session.commit()

        rows = parse(csv_lines(links_csv_rows(link.org_id, "https://go.acme.test")))
    assert rows[0] == list(LINK_COLUMNS)
    assert len(rows) == 2
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["slug"] == "abc"
    assert row["short_url"] == "https://go.acme.test/abc"
    assert row["destination"] == "https://example.com/a"
    assert row["title"] == '\'=HYPERLINK("http://evil","x")'
    assert row["created_by"] == "abc@a.test"
    assert row["is_active"] == "true"
    assert row["created_at"].endswith("Z")
    # Bot and internal are counted like the clicks export's flags: one click can be both.
    assert (row["click_count"], row["human_clicks"]) == ("7", "4")
    assert (row["bot_clicks"], row["internal_clicks"]) == ("2", "2")


def test_links_without_clicks_export_zero_counts(app):
    with app.app_context():
        link = make_link()
        rows = parse(csv_lines(links_csv_rows(link.org_id, "https://go.acme.test")))
    row = dict(zip(rows[0], rows[1], strict=True))
    counts = ("click_count", "human_clicks", "bot_clicks", "internal_clicks")
    assert [row[column] for column in counts] == ["0", "0", "0", "0"]


def test_links_export_sends_every_live_link_once_in_creation_order_across_chunks(app):
    with app.app_context():
        first = make_link("first")
        org_id = first.org_id
        # Links created at one instant come in the order they were stored.
        for slug in ("tie-a", "tie-b", "tie-c", "gone", "last"):
            db.session.add(
                Link(org_id=org_id, slug=slug, destination=f"https://example.com/{slug}")
            )
        db.session.commit()
        links = {link.slug: link for link in db.session.execute(db.select(Link)).scalars()}
        first.created_at = NOW - timedelta(days=1)
        for slug in ("tie-a", "tie-b", "tie-c"):
            links[slug].created_at = NOW
        links["last"].created_at = NOW + timedelta(days=1)
        links["gone"].deleted_at = NOW
        for count, slug in enumerate(("first", "tie-a", "tie-b", "tie-c", "last"), start=1):
            for second in range(count):
                add_click(links[slug], NOW + timedelta(seconds=second), is_bot=True)
        db.session.commit()

        rows = parse(csv_lines(links_csv_rows(org_id, "https://go.acme.test", chunk_size=2)))
    assert [(row[0], row[11]) for row in rows] == [
        ("slug", "bot_clicks"),
        ("first", "1"),
        ("tie-a", "2"),
        ("tie-b", "3"),
        ("tie-c", "4"),
        ("last", "5"),
    ]


def test_links_export_out_of_time_stops_after_the_chunk_in_flight_and_says_so(app, caplog):
    caplog.set_level(logging.WARNING)
    with app.app_context():
        org_id = make_link("first").org_id
        for slug in ("second", "third"):
            db.session.add(Link(org_id=org_id, slug=slug, destination="https://example.com/"))
        db.session.commit()

        rows = parse(
            csv_lines(
                links_csv_rows(
                    org_id,
                    "https://go.acme.test",
                    timeout_seconds=60,
                    chunk_size=2,
                    clock=Clock(0, 61),
                )
            )
        )
    assert [row[0] for row in rows] == ["slug", "first", "second"]
    assert cut_offs(caplog) == [
        f"event=export_cut_off export=links org_id={org_id} rows=2 seconds=61.0 limit_seconds=60"
    ]


# Downloads --------------------------------------------------------------------------------


def test_the_downloaded_links_export_quotes_every_field(app, org_team):
    acme, owner = org_team["slug"], org_team["owner"]
    create_link(owner, acme, "semi", "https://example.com/", title=SEMICOLON_FORMULA)
    create_link(owner, acme, "sum", "https://example.com/", title="@SUM(A1:A9)")

    body = owner.get(f"/orgs/{acme}/links.csv").get_data()

    assert ALL_QUOTED.fullmatch(body)
    assert body.startswith(
        b'"slug","short_url","destination","title","created_by","created_at","is_active",'
        b'"expires_at","max_clicks","click_count","human_clicks","bot_clicks",'
        b'"internal_clicks"\r\n'
    )
    assert b',"x;=HYPERLINK(""http://evil.test"",""x"")",' in body
    assert b',"\'@SUM(A1:A9)",' in body
    assert body.endswith(b',"true","","","0","0","0","0"\r\n')


def test_the_downloaded_clicks_export_quotes_every_field(app, org_team):
    acme = org_team["slug"]
    create_link(org_team["owner"], acme, "semi", "https://example.com/", title=SEMICOLON_FORMULA)
    visit(app, "semi", Referer="https://mail.example/inbox")

    body = org_team["owner"].get(f"/orgs/{acme}/links/semi/clicks.csv").get_data()

    assert ALL_QUOTED.fullmatch(body)
    header, row = body.split(b"\r\n")[:2]
    assert header == (
        b'"clicked_at","referrer_host","browser","os","device","is_bot","is_internal","country"'
    )
    assert re.fullmatch(
        rb'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ","mail.example","Chrome","Windows","desktop",'
        rb'"false","false",""',
        row,
    )


@pytest.fixture
def no_time_for_exports(app_config):
    """Exports that are out of time as soon as their first chunk is sent."""
    app_config["EXPORT_TIMEOUT_SECONDS"] = 0


def test_a_download_stops_once_it_has_run_export_timeout_seconds(
    no_time_for_exports, app, org_team, caplog
):
    caplog.set_level(logging.WARNING)
    acme, owner = org_team["slug"], org_team["owner"]
    create_link(owner, acme, "busy", "https://example.com/")
    link = link_row(app, "busy")
    with app.app_context():
        # Bare rows, as the clicks export reads only these (no rollups needed).
        db.session.add_all(
            Click(link_id=link.id, clicked_at=NOW + timedelta(seconds=second))
            for second in range(CHUNK_SIZE + 1)
        )
        db.session.commit()

    body = owner.get(f"/orgs/{acme}/links/busy/clicks.csv").get_data()

    # The file holds the header and the first chunk, each line whole.
    assert ALL_QUOTED.fullmatch(body)
    assert body.count(b"\r\n") == 1 + CHUNK_SIZE
    last_row = body.split(b"\r\n")[-2]
    last_sent = NOW + timedelta(seconds=CHUNK_SIZE - 1)
    assert last_row.startswith(b'"' + csv_cell(last_sent).encode() + b'",')
    [cut_off] = cut_offs(caplog)
    assert cut_off.startswith(
        f"event=export_cut_off export=clicks link_id={link.id} rows={CHUNK_SIZE} seconds="
    )
    assert cut_off.endswith(" limit_seconds=0")
