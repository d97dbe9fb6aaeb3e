"""The one check every destination URL passes before it is stored or redirected to.

It is pure (no Flask request): the form, the redirect, the API and imports all call
`validate_destination` with the hosts that count as our own. URLs are parsed with the
WHATWG parser browsers use (ada-url), so what we check is what a browser will open.
"""

import ipaddress
import unicodedata
from collections.abc import Iterable
from urllib.parse import urlsplit

import ada_url
from confusable_homoglyphs import categories, confusables

from app.services.errors import InvalidInput

MAX_DESTINATION_LENGTH = 2048
# Parsing is bounded too: far longer input can not normalise to an acceptable length.
_MAX_RAW_LENGTH = 4 * MAX_DESTINATION_LENGTH
ALLOWED_SCHEMES = ("http", "https")
# Control, format (bidi marks, zero-width joiners), separator and surrogate characters:
# browsers strip or reinterpret some of them, so what we checked would not be what runs.
_FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Zs", "Zl", "Zp", "Cs", "Co"}
# Names that only ever resolve inside someone's network (RFC 6761, RFC 8375, ICANN .internal).
_PRIVATE_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa")
# Scripts that are written together: a Japanese name mixes Han, Hiragana and Katakana, a
# Korean one Han and Hangul. Such labels are not mixed-script spoofs (UTS 39, highly restrictive).
_SCRIPT_FAMILIES = (
    {"HAN", "HIRAGANA", "KATAKANA"},
    {"HAN", "HANGUL"},
    {"HAN", "BOPOMOFO"},
)

_NOT_ABSOLUTE = "Enter a full web address that starts with https:// or http://."
# DNS limits (RFC 1035), on the ASCII (punycode) form: the redirect's Location header is
# IDNA-encoded, which fails on an empty or longer label, and no resolver looks such names up.
MAX_LABEL_LENGTH = 63
MAX_HOST_LENGTH = 253


def _ipv4_in_last_32_bits(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    """The IPv4 address an IPv4-mapped, IPv4-translated or NAT64 address ends with."""
    return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)


def _ipv4_after_6to4_prefix(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    """The IPv4 address a 6to4 address (2002:AABB:CCDD::/48) carries after its prefix."""
    return ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)


# Every address block a destination may not point into (the IANA special-purpose
# registries), written out instead of asking `ip.is_global`, whose answers changed between
# Python releases. A block that wraps an IPv4 address names how to unwrap it: such an
# address is judged by the IPv4 address inside. The first block that matches decides.
_SPECIAL_NETWORKS = tuple(
    (ipaddress.ip_network(network), unwrap)
    for network, unwrap in (
        ("0.0.0.0/8", None),  # "this network"
        ("10.0.0.0/8", None),  # private
        ("100.64.0.0/10", None),  # carrier-grade NAT
        ("127.0.0.0/8", None),  # loopback
        ("169.254.0.0/16", None),  # link-local, cloud metadata
        ("172.16.0.0/12", None),  # private
        ("192.0.0.0/24", None),  # IETF protocol assignments
        ("192.0.2.0/24", None),  # documentation
        ("192.168.0.0/16", None),  # private
        ("198.18.0.0/15", None),  # benchmarking
        ("198.51.100.0/24", None),  # documentation
        ("203.0.113.0/24", None),  # documentation
        ("224.0.0.0/4", None),  # multicast
        ("240.0.0.0/4", None),  # reserved, broadcast
        ("::/96", None),  # unspecified, loopback, IPv4-compatible (deprecated)
        ("::ffff:0:0/96", _ipv4_in_last_32_bits),  # IPv4-mapped
        ("::ffff:0:0:0/96", _ipv4_in_last_32_bits),  # IPv4-translated
        ("64:ff9b::/96", _ipv4_in_last_32_bits),  # NAT64, well-known prefix
        ("64:ff9b:1::/48", None),  # NAT64, local use
        ("100::/64", None),  # discard-only
        ("2001::/23", None),  # IETF protocol assignments (Teredo among them)
        ("2001:db8::/32", None),  # documentation
        ("2002::/16", _ipv4_after_6to4_prefix),  # 6to4
        ("3fff::/20", None),  # documentation
        ("5f00::/16", None),  # segment routing (SRv6) identifiers
        ("fc00::/7", None),  # unique local
        ("fe80::/10", None),  # link-local
        ("fec0::/10", None),  # site-local (deprecated)
        ("ff00::/8", None),  # multicast
    )
)


def own_hosts(short_base_url: str | None, request_host: str | None) -> list[str]:
    """The hosts a destination must not point at: the short-link host and the app's host."""
    hosts = []
    if short_base_url:
        hosts.append(urlsplit(short_base_url).netloc)
    if request_host:
        hosts.append(request_host)
    return [host for host in hosts if host]


def validate_destination(
    raw: str, *, own_hosts: Iterable[str] = (), allow_private: bool = False
) -> str:
    """Check a destination URL and return its normalised ASCII form, the one to store.

    Raises InvalidInput(field="url") with a message that says what to fix.
    """
    if not isinstance(raw, str) or not raw:
        raise InvalidInput("Enter the address the short link should lead to.", field="url")
    if len(raw) > _MAX_RAW_LENGTH:
        raise _too_long()
    if any(unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in raw):
        raise InvalidInput(
            "The address contains spaces, line breaks or invisible characters; "
            "paste it again without them.",
            field="url",
        )
    scheme, separator, _ = raw.partition(":")
    if not separator or scheme.lower() not in ALLOWED_SCHEMES:
        if separator and scheme.isascii() and scheme.isalpha() and len(scheme) <= 20:
            raise InvalidInput(
                f"Only web addresses (http:// or https://) can be shortened, not {scheme}: links.",
                field="url",
            )
        raise InvalidInput(_NOT_ABSOLUTE, field="url")
    # WHATWG parsing forgives "https:host" and "https:\\host"; we ask for the plain form.
    if not raw[len(scheme) + 1 :].startswith("//"):
        raise InvalidInput(_NOT_ABSOLUTE, field="url")
    try:
        url = ada_url.URL(raw)
    except ValueError:
        raise InvalidInput(
            "That is not a valid web address; check it for typos.", field="url"
        ) from None
    if url.protocol not in ("http:", "https:"):
        raise InvalidInput(_NOT_ABSOLUTE, field="url")
    if url.username or url.password:
        raise InvalidInput(
            "Addresses with a user name or password before the host (user@host) are not "
            "allowed: they disguise where the link really goes.",
            field="url",
        )
    host = url.hostname.removesuffix(".")
    if not host:
        raise InvalidInput(_NOT_ABSOLUTE, field="url")
    _check_host_length(host)
    if _is_own_host(host, own_hosts):
        raise InvalidInput(
            "That address is one of our own short links or pages; link to the final "
            "destination instead.",
            field="url",
        )
    if not allow_private and _is_private_host(host):
        raise InvalidInput(
            "That address points into a private network (localhost, an internal name or a "
            "private IP address). This organisation does not allow private destinations.",
            field="url",
        )
    if _has_lookalike_label(host):
        raise InvalidInput(
            "The host name mixes alphabets that look alike (for example a Cyrillic letter "
            "among Latin ones), a common phishing trick.",
            field="url",
        )
    href = url.href
    if len(href) > MAX_DESTINATION_LENGTH:
        raise _too_long()
    return href


def safe_href(stored: str | None) -> str:
    """The destination for an `href` attribute, or "#" unless it is a plain http(s) URL.

    Rows written before validation existed, or straight into the database, must not turn
    into `javascript:` links on the dashboard.
    """
    if not stored:
        return "#"
    if any(unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in stored):
        return "#"
    try:
        url = ada_url.URL(stored)
    except ValueError:
        return "#"
    return url.href if url.protocol in ("http:", "https:") else "#"


def split_for_display(stored: str) -> tuple[str, str, str]:
    """Split a stored destination into (before host, host, after host) to emphasise the host."""
    try:
        url = ada_url.URL(stored)
    except ValueError:
        return stored, "", ""
    start = stored.find(url.host)
    if not url.host or start < 0:
        return stored, "", ""
    end = start + len(url.host)
    return stored[:start], stored[start:end], stored[end:]


def unicode_destination(stored: str) -> str:
    """The destination with its host in Unicode, so people can see what punycode spells."""
    try:
        url = ada_url.URL(stored)
    except ValueError:
        return stored
    host = url.hostname
    if not host or "xn--" not in host:
        return stored
    return stored.replace(host, ada_url.idna_to_unicode(host), 1)


def _too_long() -> InvalidInput:
    """The error for a destination over MAX_DESTINATION_LENGTH once encoded."""
    return InvalidInput(
        f"The address is too long: keep it to {MAX_DESTINATION_LENGTH} characters "
        "(after encoding).",
        field="url",
    )


def _check_host_length(host: str) -> None:
    """Refuse a host name with an empty label, a label over 63 characters or over 253 in all."""
    if _ip_literal(host) is not None:
        return
    labels = host.split(".")
    if "" in labels:
        raise InvalidInput(
            "The host name has an empty part (two dots in a row, or a dot at the start); "
            "check it for typos.",
            field="url",
        )
    if any(len(label) > MAX_LABEL_LENGTH for label in labels):
        raise InvalidInput(
            "A part of the host name between dots is too long: each may have at most "
            f"{MAX_LABEL_LENGTH} characters (non-Latin letters count as their encoded "
            "xn-- form).",
            field="url",
        )
    if len(host) > MAX_HOST_LENGTH:
        raise InvalidInput(
            f"The host name is too long: keep it to {MAX_HOST_LENGTH} characters "
            "(non-Latin letters count as their encoded xn-- form).",
            field="url",
        )


def _normalise_host(host: str) -> str | None:
    """Lower-case, IDNA-map and strip a host the way a browser would; None if unparseable."""
    try:
        return ada_url.URL(f"http://{host}/").hostname.removesuffix(".")
    except ValueError:
        return None


def _is_own_host(host: str, hosts: Iterable[str]) -> bool:
    """Tell whether `host` is one of ours, or a subdomain of one."""
    for own in hosts:
        normalised = _normalise_host(own)
        if normalised and (host == normalised or host.endswith("." + normalised)):
            return True
    return False


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address a host names literally (brackets allowed), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _is_non_global(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Tell whether an address is not on the public internet, judging an IPv6 address that
    wraps an IPv4 one by the IPv4 address inside."""
    for network, unwrap in _SPECIAL_NETWORKS:
        # Compared across versions, an IPv4 address could match an IPv6 block by its bits.
        if network.version == ip.version and ip in network:
            return unwrap is None or _is_non_global(unwrap(ip))
    return False


def _is_private_host(host: str) -> bool:
    """Tell whether a host is a private address or an intranet-style name."""
    ip = _ip_literal(host)
    if ip is not None:
        return _is_non_global(ip)
    return host == "localhost" or host.endswith(_PRIVATE_SUFFIXES) or "." not in host


def _has_lookalike_label(host: str) -> bool:
    """Tell whether a label mixes scripts in a way used to imitate another name."""
    if _ip_literal(host) is not None:
        return False
    for label in ada_url.idna_to_unicode(host).split("."):
        if label.isascii() or not confusables.is_dangerous(label):
            continue
        scripts = {categories.alias(char) for char in label} - {"COMMON"}
        if not any(scripts <= family for family in _SCRIPT_FAMILIES):
            return True
    return False
