"""Domain errors raised by services; views and error handlers map them to responses."""


class DomainError(Exception):
    """Base class for rule violations a user can cause."""

    status_code = 400

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    """The thing does not exist, or the user may not know that it does."""

    status_code = 404


class Forbidden(DomainError):
    """The user is a member but their role does not allow this."""

    status_code = 403


class Conflict(DomainError):
    """The change clashes with the current state (a taken slug, the last owner)."""

    status_code = 409


class InvalidInput(DomainError):
    """A submitted value breaks a rule; `field` names the form field to show it next to."""

    status_code = 422


class Gone(DomainError):
    """The thing existed but can no longer be used (a revoked, expired or used invitation)."""

    status_code = 410


class Unavailable(DomainError):
    """A transient failure the user can retry, such as running out of random slug attempts."""

    status_code = 503
