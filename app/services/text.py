"""One rule for the short free text people and identity providers give us: link titles, org
names and display names.

Control characters, bidi overrides, zero-width marks, line separators, surrogates and
private-use characters let a name disguise itself or its neighbours in the header, a table
or the audit log (and PostgreSQL text cannot even hold a NUL), so none of them is kept.
Runs of white space become one space.
"""

import unicodedata

from app.services.errors import InvalidInput

# Cc control, Cf format (bidi, zero-width), Zl/Zp line and paragraph separators,
# Cs surrogates, Co private use.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co"})


def has_invisible_characters(text: str) -> bool:
    """Tell whether the text holds a character of the invisible categories."""
    return any(unicodedata.category(char) in INVISIBLE_CATEGORIES for char in text)


def collapse_spaces(text: str) -> str:
    """Trim the text and turn every run of white space (tabs, newlines too) into one space."""
    return " ".join(text.split())


def clean_line(raw: str | None, *, field: str, max_length: int, what: str) -> str | None:
    """Validate one line of text a person typed; return it with spaces collapsed, or None if
    blank.

    Raises InvalidInput on `field`, naming the text as `what` ("title", "name"), when it is
    too long or holds invisible characters: refusing says what to fix, where silently
    dropping them would store something other than what was typed.
    """
    # Checked before spaces are collapsed: a line break or tab typed into a one-line field
    # is refused like any other control character, not quietly turned into a space.
    trimmed = (raw or "").strip()
    if has_invisible_characters(trimmed):
        raise InvalidInput(
            f"The {what} contains line breaks, control or invisible characters; remove them.",
            field=field,
        )
    text = collapse_spaces(trimmed)
    if not text:
        return None
    if len(text) > max_length:
        raise InvalidInput(f"Keep the {what} to {max_length} characters or fewer.", field=field)
    return text


def strip_invisible(raw: object, *, max_length: int) -> str | None:
    """Clean text nobody here typed (an identity provider's claim): drop invisible characters,
    collapse spaces and cut to `max_length`; None when nothing is left or it is not text."""
    if not isinstance(raw, str):
        return None
    # Spaces first, so a tab or newline between two words leaves a space, not nothing.
    spaced = collapse_spaces(raw)
    visible = "".join(
        char for char in spaced if unicodedata.category(char) not in INVISIBLE_CATEGORIES
    )
    return collapse_spaces(visible)[:max_length].strip() or None
