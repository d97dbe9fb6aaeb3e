"""QR codes: SVG of the short URL only, deterministic, with headers safe for a download."""

from app.services.qr import QR_CONTENT_TYPE, qr_data_uri, qr_download_headers, qr_svg

SHORT_URL = "https://go.acme.test/abc"


def test_qr_is_a_standalone_svg_without_scripts_or_xml_declaration():
    svg = qr_svg(SHORT_URL)
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    assert "<?xml" not in svg
    assert "<script" not in svg
    assert "onload" not in svg


def test_qr_is_the_same_for_the_same_url_and_differs_for_another():
    assert qr_svg(SHORT_URL) == qr_svg(SHORT_URL)
    assert qr_svg(SHORT_URL) != qr_svg("https://go.acme.test/abd")


def test_qr_data_uri_is_an_svg_image():
    uri = qr_data_uri(SHORT_URL)
    assert uri.startswith("data:image/svg+xml")
    assert "script" not in uri


def test_qr_download_is_an_attachment_that_cannot_run_anything():
    headers = qr_download_headers("abc")
    assert headers["Content-Type"] == QR_CONTENT_TYPE == "image/svg+xml"
    assert headers["Content-Disposition"] == 'attachment; filename="qr-abc.svg"'
    assert headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_qr_download_filename_keeps_only_safe_characters():
    headers = qr_download_headers('a"b\r\nc')
    assert headers["Content-Disposition"] == 'attachment; filename="qr-a-b-c.svg"'
