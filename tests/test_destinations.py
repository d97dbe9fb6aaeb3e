"""The destination validator on its own: what it refuses, and the form it stores."""

import pytest
from werkzeug.datastructures import Headers
from werkzeug.urls import iri_to_uri

from app.services.destinations import (
    MAX_DESTINATION_LENGTH,
    MAX_HOST_LENGTH,
    MAX_LABEL_LENGTH,
    own_hosts,
    safe_href,
    unicode_destination,
    validate_destination,
)
from app.services.errors import InvalidInput

OWN_HOSTS = ["go.acme.test", "app.acme.test:8443"]

# Security checklist section 11, items 1 to 7, plus the D1-D8 cases.
REFUSED = {
    # 1. Scheme tricks
    "javascript:alert(1)": "Only web addresses",
    "JaVaScRiPt:alert(1)": "Only web addresses",
    "java\tscript:alert(1)": "invisible characters",
    "\x00javascript:alert(1)": "invisible characters",
    " javascript:alert(1)": "invisible characters",
    "\x01javascript:alert(1)": "invisible characters",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==": "Only web addresses",
    "vbscript:msgbox(1)": "Only web addresses",
    "file:///etc/passwd": "Only web addresses",
    "ftp://x.example/": "Only web addresses",
    "mailto:a@b.c": "Only web addresses",
    # 2. Header and control characters
    "https://ok.example/a\r\nSet-Cookie: pwn=1": "line breaks",
    "https://ok.example/a\nb": "line breaks",
    "https://ok.example/\u202egnp.exe": "invisible characters",
    "https://ok.example/\u0000": "invisible characters",
    "https://ok.example/a b": "spaces",
    "https://ok.example/\u2028": "invisible characters",
    "https://ok.example/\u200ex": "invisible characters",
    # 3. Length
    "https://a.example/" + "a" * 2100: "too long",
    # 4. Relative and odd
    "//evil.example": "full web address",
    "//evil.example/x": "full web address",
    "/admin": "full web address",
    "/relative": "full web address",
    "https:evil.example": "full web address",
    "https:\\\\evil.example": "full web address",
    "example.com": "full web address",
    "example.com/x": "full web address",
    "http://": "not a valid web address",
    "https://exa mple.com": "spaces",
    "": "Enter the address",
    # 5. Self-reference: the short host and the app host, in every spelling
    "https://go.acme.test/abc": "our own",
    "https://GO.ACME.TEST/abc": "our own",
    "https://GO.ACME.TEST./x": "our own",
    "https://\uff47\uff4f.acme.test/x": "our own",
    "https://www.go.acme.test/x": "our own",
    "https://app.acme.test/orgs/1": "our own",
    # 6. Internal addresses, in the forms browsers accept
    "http://2130706433/": "private network",
    "http://0x7f.1/": "private network",
    "http://127.1/": "private network",
    "http://0177.0.0.1/": "private network",
    "http://[::ffff:7f00:1]/": "private network",
    "http://[::1]/": "private network",
    "http://169.254.169.254/latest/meta-data/": "private network",
    "http://100.64.0.1/": "private network",
    "http://10.0.0.5/": "private network",
    "http://localhost:6379/": "private network",
    "http://LOCALHOST./": "private network",
    "http://localhost./": "private network",
    "http://printer.localhost/": "private network",
    "http://intranet/": "private network",
    "http://nas.local/": "private network",
    # Host names DNS can not hold, which the redirect could not even send as its Location
    "https://" + "a" * 64 + ".example/": "at most 63 characters",
    "https://" + "ü" * 60 + ".example/": "at most 63 characters",
    # 254 characters: one over the limit.
    "https://" + ".".join(["a" * 60] * 4 + ["b" * 10]) + "/": "keep it to 253 characters",
    "https://a..example/": "empty part",
    "https://.example.com/": "empty part",
    # 7. Deception
    "https://google.com@evil.example/": "user name or password",
    "https://good.example%2F@evil.example": "user name or password",
    "https://user:pass@evil.example/": "user name or password",
    "https://p\u0430ypal.com/": "alphabets",
    "https://xn--pypal-4ve.com/": "alphabets",
}


@pytest.mark.parametrize(("raw", "message"), REFUSED.items(), ids=repr)
def test_refuses_dangerous_destinations_with_a_reason(raw, message):
    with pytest.raises(InvalidInput) as refused:
        validate_destination(raw, own_hosts=OWN_HOSTS)
    assert refused.value.field == "url"
    assert message.lower() in refused.value.message.lower()


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("https://example.com/page", "https://example.com/page"),
        ("HTTPS://Example.COM:443/a/../b?x=1#top", "https://example.com/b?x=1#top"),
        ("https://münchen.de/", "https://xn--mnchen-3ya.de/"),
        ("https://例え.jp/パス?q=ü", "https://xn--r8jz45g.jp/%E3%83%91%E3%82%B9?q=%C3%BC"),
        ("https://\u0430\u0440\u0440\u04cf\u0435.com/", "https://xn--80ak6aa92e.com/"),
        ("http://8.8.8.8/dns", "http://8.8.8.8/dns"),
        ("https://go.acme.test.evil.example/", "https://go.acme.test.evil.example/"),
    ],
)
def test_stores_the_normalised_ascii_url(raw, stored):
    assert validate_destination(raw, own_hosts=OWN_HOSTS) == stored


def test_normalised_urls_pass_again_unchanged():
    for raw in ("https://münchen.de/ä", "HTTP://EXAMPLE.com/x"):
        once = validate_destination(raw)
        assert validate_destination(once) == once
        Headers().add("Location", once)


def test_length_limit_applies_after_normalisation():
    base = "https://a.example/"
    assert validate_destination(base + "a" * (MAX_DESTINATION_LENGTH - len(base)))
    with pytest.raises(InvalidInput, match="too long"):
        validate_destination(base + "a" * (MAX_DESTINATION_LENGTH - len(base) + 1))
    # Each é becomes %C3%A9: short input, too long once encoded. Refused, not truncated.
    with pytest.raises(InvalidInput, match="too long"):
        validate_destination(base + "é" * 1000)


@pytest.mark.parametrize(
    "raw",
    [
        "http://[::ffff:0:7f00:1]/",  # IPv4-translated 127.0.0.1
        "http://[::ffff:0:a00:1]/",  # IPv4-translated 10.0.0.1
        "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
        "http://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
        "http://[64:ff9b:1::a00:1]/",  # local-use NAT64
        "http://[64:ff9b:1::808:808]/",  # local-use NAT64, even of a public address
        "http://[2002:a00:1::1]/",  # 6to4 of 10.0.0.1
        "http://[fec0::1]/",  # site-local
        "http://[2001:db8::1]/",  # documentation
        "http://[3fff::1]/",  # documentation (RFC 9637)
        "http://[fd00::1]/",  # unique local
        "http://[fe80::1]/",  # link-local
        "http://[ff02::1]/",  # multicast
        "http://224.0.0.1/",  # multicast
    ],
)
def test_refuses_ip_addresses_that_are_not_on_the_public_internet(raw):
    with pytest.raises(InvalidInput, match="private network") as refused:
        validate_destination(raw, own_hosts=OWN_HOSTS)
    assert refused.value.field == "url"


@pytest.mark.parametrize(
    "raw",
    [
        "http://[2606:4700::1111]/",
        "http://[64:ff9b::808:808]/",  # NAT64 of 8.8.8.8
        "http://[::ffff:0:808:808]/",  # IPv4-translated 8.8.8.8
        "http://[::ffff:808:808]/",  # IPv4-mapped 8.8.8.8
        "http://[2002:808:808::1]/",  # 6to4 of 8.8.8.8
        "http://1.1.1.1/",
    ],
)
def test_public_ip_addresses_stay_allowed_in_every_form(raw):
    assert validate_destination(raw, own_hosts=OWN_HOSTS) == raw


def test_host_names_up_to_the_dns_limits_are_stored_and_can_be_sent_as_a_location():
    longest_label = "a" * MAX_LABEL_LENGTH + ".example"
    longest_host = ".".join(["a" * MAX_LABEL_LENGTH] * 3 + ["b" * 61])
    assert len(longest_host) == MAX_HOST_LENGTH

    for host in (longest_label, longest_host):
        stored = validate_destination(f"https://{host}/")
        assert stored == f"https://{host}/"
        # What Werkzeug does to a redirect's Location header before sending it.
        assert iri_to_uri(stored) == stored


@pytest.mark.parametrize(
    "raw", ["http://intranet/", "http://10.0.0.5/", "http://localhost:8080/", "http://127.1/"]
)
def test_orgs_that_allow_private_destinations_may_link_inside_their_network(raw):
    assert validate_destination(raw, own_hosts=OWN_HOSTS, allow_private=True)


def test_private_setting_never_allows_links_to_ourselves():
    with pytest.raises(InvalidInput, match="our own"):
        validate_destination("https://go.acme.test/x", own_hosts=OWN_HOSTS, allow_private=True)


def test_own_hosts_come_from_the_short_base_url_and_the_request():
    assert own_hosts("https://go.acme.test", "app.acme.test:8443") == [
        "go.acme.test",
        "app.acme.test:8443",
    ]
    assert own_hosts("", "localhost") == ["localhost"]


@pytest.mark.parametrize(
    ("stored", "href"),
    [
        ("javascript:alert(1)", "#"),
        ("data:text/html,x", "#"),
        ("https://ok.example/a\r\nb", "#"),
        ("", "#"),
        ("https://example.com/x", "https://example.com/x"),
    ],
)
def test_safe_href_only_lets_http_urls_into_links(stored, href):
    assert safe_href(stored) == href


def test_punycode_hosts_can_be_shown_in_unicode():
    assert unicode_destination("https://xn--mnchen-3ya.de/x") == "https://münchen.de/x"
    assert unicode_destination("https://example.com/xn--a") == "https://example.com/xn--a"
