"""The headers every response carries: a CSP without inline code, no sniffing, a referrer
policy, and HSTS over HTTPS. One list for the Flask responses (an after_request hook) and
for the cached redirect, which answers without Flask (app/fast_redirects.py)."""

from urllib.parse import urlsplit


class SecurityHeaders:
    """The security headers of an app whose OIDC provider is `oidc_issuer`."""

    def __init__(self, oidc_issuer: str | None):
        # Signing out posts a form that redirects to the provider's end-session page, and
        # browsers hold form redirects to form-action too: allow the provider's origin.
        issuer = urlsplit(oidc_issuer or "")
        provider = f" {issuer.scheme}://{issuer.netloc}" if issuer.scheme and issuer.netloc else ""
        policy = (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
            f"form-action 'self'{provider}"
        )
        self.plain = (
            ("Content-Security-Policy", policy),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "strict-origin-when-cross-origin"),
        )
        # Browsers that saw this once refuse plain HTTP here for a year.
        self.secure = (
            *self.plain,
            ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
        )

    def for_scheme(self, is_secure: bool) -> tuple[tuple[str, str], ...]:
        """The headers of a response over HTTPS (`is_secure`) or plain HTTP."""
        return self.secure if is_secure else self.plain
