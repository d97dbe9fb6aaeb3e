"""CSV exports: header first, one row per click, no IPs or hashes, formulas defused."""

import csv
import io
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
from tests.click_factories import add_click, make_link

NOW = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)


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
        )
        db.session.add(
            Link(org_id=link.org_id, slug="gone", destination="https://x.test/", deleted_at=NOW)
        )
        make_link("xyz")
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
    assert row["click_count"] == "7"
    assert row["created_at"].endswith("Z")
