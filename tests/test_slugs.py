"""Slug rules: random slugs, custom slugs, and the words no link may take."""

import re

import pytest

from app.services import slugs
from app.services.errors import InvalidInput


def test_random_slugs_are_eight_lowercase_alphanumerics_without_repeats():
    generated = [slugs.generate_slug() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9a-z]{8}", slug) for slug in generated)
    assert len(set(generated)) == len(generated)


def test_random_slugs_come_from_secrets(monkeypatch):
    drawn = []

    def choice(alphabet):
        drawn.append(alphabet)
        return "q"

    monkeypatch.setattr(slugs.secrets, "choice", choice)
    assert slugs.generate_slug() == "qqqqqqqq"
    assert drawn == [slugs.RANDOM_ALPHABET] * 8


def test_every_first_path_segment_the_app_routes_is_reserved(app):
    reserved = slugs.reserved_slugs(app.url_map)
    segments = {rule.rule.lstrip("/").split("/", 1)[0].lower() for rule in app.url_map.iter_rules()}
    routed = {segment for segment in segments if segment and "<" not in segment}
    assert {"orgs", "login", "logout", "auth", "static", "healthz"} <= routed
    assert routed <= reserved


def test_new_routes_are_reserved_automatically(app):
    app.add_url_rule("/brand-new-page", "brand_new_page", lambda: "hi")
    assert "brand-new-page" in slugs.reserved_slugs(app.url_map)


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("my-launch-2025", "my-launch-2025"),
        ("PROMO", "promo"),
        ("a1b", "a1b"),
        ("x" * 64, "x" * 64),
    ],
)
def test_custom_slugs_are_stored_lower_case(raw, stored):
    assert slugs.clean_custom_slug(raw, reserved=set()) == stored


# Security checklist section 11 item 8, and S1/S2.
@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("login", "reserved"),
        ("LOGIN", "reserved"),
        ("Static", "reserved"),
        ("healthz", "reserved"),
        ("api", "reserved"),
        ("admin", "reserved"),
        ("orgs", "reserved"),
        ("well-known", "reserved"),
        (".well-known", "letters a-z"),
        ("favicon.ico", "letters a-z"),
        ("a/b", "letters a-z"),
        ("a%2Fb", "letters a-z"),
        ("a.b", "letters a-z"),
        ("ab c", "letters a-z"),
        ("-abc", "letters a-z"),
        ("abc-", "letters a-z"),
        ("ab", "3 to 64"),
        ("a" * 65, "3 to 64"),
        ("\uff41\uff42\uff43", "letters a-z"),
        ("abc\u202e", "letters a-z"),
        ("\u212aey", "letters a-z"),
        ('" onmouseover=alert(1) x="', "letters a-z"),
        ("😀😀😀", "letters a-z"),
    ],
)
def test_bad_custom_slugs_are_refused(app, raw, message):
    with pytest.raises(InvalidInput) as refused:
        slugs.clean_custom_slug(raw, reserved=slugs.reserved_slugs(app.url_map))
    assert refused.value.field == "slug"
    assert message in refused.value.message
