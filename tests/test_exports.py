"""CSV exports: header first, one row per click, no IPs or hashes, every field quoted and
formulas defused."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.extensions import db
from app.models import Link
from app.services.exports import (
    CLICK_COLUMNS,
    LINK_COLUMNS,
    clicks_csv_rows,
    csv_cell,
    csv_lines,
    links_csv_rows,
)
from tests.click_factories import add_click, make_link, visit
from tests.link_helpers import create_link

NOW = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)
# A CSV body in which every field, the header's too, is in double quotes.
ALL_QUOTED = re.compile(rb'(?:"(?:[^"]|"")*"(?:,"(?:[^"]|"")*")*\r\n)+')
SEMICOLON_FORMULA = 'x;=HYPERLINK("http://evil.test","x")'


def parse(lines) -> list[list[str]]:
    return list(csv.reader(io.StringIO("".join(lines))))


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


def test_clicks_export_streams_more_rows_than_one_batch(app):
    with app.app_context():
        link = make_link()
        for second in range(1500):
            add_click(link, NOW + timedelta(seconds=second))
        db.session.commit()

        rows = parse(csv_lines(clicks_csv_rows(link.id)))
    assert len(rows) == 1501
    assert rows[-1][0] == "2026-11-23T14:54:59Z"


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
