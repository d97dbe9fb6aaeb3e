"""QR codes for short URLs, as SVG that embeds nothing but the code itself."""

import io
import re

import segno

QR_CONTENT_TYPE = "image/svg+xml"
# Served on its own (downloaded or opened), the SVG is a document on our origin: it may
# not run scripts or load anything, and it is saved rather than displayed inline.
QR_DOWNLOAD_CSP = "default-src 'none'; style-src 'unsafe-inline'"
_FILENAME_UNSAFE = re.compile(r"[^a-z0-9-]+")


def qr_svg(short_url: str) -> str:
    """A standalone SVG QR code of the canonical short URL (never the destination)."""
    code = segno.make(short_url, error="m", micro=False)
    buffer = io.BytesIO()
    # No XML declaration, so the same text also works inlined in a page; a white
    # background keeps it scannable in dark mode.
    code.save(buffer, kind="svg", xmldecl=False, scale=4, border=4, dark="#000", light="#fff")
    return buffer.getvalue().decode()


def qr_data_uri(short_url: str) -> str:
    """The QR code as a data: URI for an <img>, which the page CSP allows and never scripts."""
    code = segno.make(short_url, error="m", micro=False)
    return code.svg_data_uri(scale=4, border=4, dark="#000", light="#fff")


def qr_download_headers(slug: str) -> dict[str, str]:
    """The response headers for downloading a link's QR code as a file."""
    filename = _FILENAME_UNSAFE.sub("-", slug.lower()).strip("-") or "link"
    return {
        "Content-Type": QR_CONTENT_TYPE,
        "Content-Disposition": f'attachment; filename="qr-{filename}.svg"',
        "Content-Security-Policy": QR_DOWNLOAD_CSP,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, max-age=300",
    }
