"""Public endpoints: the health check and (registered last) the short-link redirect."""

from flask import Blueprint
from werkzeug.routing import BaseConverter, ValidationError

from app.services.slugs import reserved_slugs

bp = Blueprint("redirects", __name__)


class ShortSlugConverter(BaseConverter):
    """One path segment that is not a reserved word.

    Refusing reserved words here lets the router go on as if `/<slug>` did not exist, so
    `GET /logout` still answers 405 and no link can ever shadow one of our pages.
    """

    _reserved: set[str] | None = None

    def to_python(self, value: str) -> str:
        """Accept the segment unless it is reserved, in which case the rule does not match."""
        if self._reserved is None:
            # Routes are all registered before the first request, so this stays current.
            self._reserved = reserved_slugs(self.map)
        if value.lower() in self._reserved:
            raise ValidationError()
        return value


@bp.record_once
def _register_converter(state) -> None:
    """Make `short_slug` known to the app's URL map before the routes use it."""
    state.app.url_map.converters["short_slug"] = ShortSlugConverter


from app.blueprints.redirects import views  # noqa: E402,F401  (views register routes on bp)
