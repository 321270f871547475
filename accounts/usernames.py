"""What an API username may be: printable, without surrounding spaces, unique whatever its case.

A username is shown in the console, written to the log and the journal, and put in
headers and CSV exports: a CR/LF in it could forge log lines or split a header, and an
invisible character (a zero-width space, a right-to-left mark) could make two names that
look alike.  ``alice`` and ``ALICE`` are one person to whoever reads the journal, so the
database refuses the second (``ApiUser.Meta.constraints``, on ``Lower("username")``).

Names are refused, never silently changed: an administrator who typed ``"alice\\n"``
learns it, rather than finding a user whose name is not what they sent.
"""

from __future__ import annotations

import unicodedata

from django.core.exceptions import ValidationError

# Control (Cc), format (Cf: zero-width and bidirectional marks), surrogate (Cs) and
# private-use (Co) characters, and the Unicode line and paragraph separators (Zl, Zp).
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})

TAKEN_MESSAGE = "This username is taken: usernames are unique regardless of case."
TAKEN_CODE = "username_taken"


def validate_username(value: str) -> None:
    if value != value.strip():
        raise ValidationError(
            "A username cannot start or end with a space or a line break.",
            code="username_spaces",
        )
    for char in value:
        if unicodedata.category(char) in REFUSED_CATEGORIES:
            name = unicodedata.name(char, "a control character")
            raise ValidationError(
                "A username cannot contain control or invisible characters "
                f"(found U+{ord(char):04X}, {name}).",
                code="username_control_character",
            )
