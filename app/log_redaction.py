"""Keep secrets that travel in URLs out of every log line, the access log included.

An invitation link carries its token in the path, and the OIDC callback carries the
authorisation code and state in its query string. Anyone who can read the logs (a log
drain, a support engineer) could use them, so each log record is rewritten before any
handler sees it.
"""

import logging
import re

REDACTED = "[redacted]"
# Invitation tokens are secrets.token_urlsafe(32); numeric ids (/invitations/5/revoke) stay.
_INVITATION_TOKEN = re.compile(r"(/invitations/)[A-Za-z0-9_-]{16,}")
# OAuth and OIDC parameters that grant something to whoever holds them.
_SECRET_PARAMETER = re.compile(
    r"([?&](?:code|state|session_state|id_token_hint|id_token|access_token|token)=)[^&\s\"']+",
    re.IGNORECASE,
)
# The loggers whose lines carry request URLs: gunicorn's access and error logs and the
# development server's request log.
REQUEST_LOGGERS = ("gunicorn.access", "gunicorn.error", "werkzeug")


def redact(text: str) -> str:
    """The text with invitation tokens and OAuth codes, states and tokens replaced."""
    text = _INVITATION_TOKEN.sub(rf"\1{REDACTED}", text)
    return _SECRET_PARAMETER.sub(rf"\1{REDACTED}", text)


class RedactSecrets(logging.Filter):
    """A logging filter that rewrites each record's message with `redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the record's message with its redacted text; never drops a record."""
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install(logger_names=REQUEST_LOGGERS) -> None:
    """Attach one RedactSecrets filter to each named logger, once."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactSecrets) for existing in logger.filters):
            logger.addFilter(RedactSecrets())
