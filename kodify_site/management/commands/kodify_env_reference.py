"""``manage.py kodify_env_reference``: the administrator's reference of every variable.

Rendered from ``settings.ENV_VARIABLES`` (what the :class:`~kodify_site.env.Env` readers
recorded), so it cannot drift from the code: ``--write README.md`` refreshes the block
between the markers, ``--check README.md`` fails when that block is stale (the test suite
runs it).  The text depends only on the declarations, never on the values this machine
happens to have set.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from kodify_site.env import Variable

START_MARKER = "<!-- env-reference:start -->"
END_MARKER = "<!-- env-reference:end -->"
SECTION_TITLE = "## Environment variables"
REGENERATE = "make env-reference"

INTRODUCTION = (
    "Every variable Kodify reads, generated from `kodify_site/settings/` by "
    f"`{REGENERATE}` (`manage.py kodify_env_reference --write README.md`); edit the "
    "settings, not this table. A blank value counts as unset. A bad value stops the "
    "start with a one-line message (`manage.py check` shows it too), except in a "
    "variable only read when a switch is on while that switch is off: then it is "
    "ignored with a warning."
)


def is_secret(variable: Variable) -> bool:
    # Variable has no flag of its own: the readers mark secrets in the kind they record.
    return variable.kind == "secret" or variable.kind.endswith("(secret)")


def render_reference(variables: Iterable[Variable]) -> str:
    """Markdown: one table per group, groups and rows in declaration order."""
    groups: dict[str, list[Variable]] = {}
    for variable in variables:
        groups.setdefault(variable.group, []).append(variable)
    lines = [INTRODUCTION]
    for group, members in groups.items():
        lines += [
            "",
            f"### {_cell(group)}",
            "",
            "| Variable | Default | Meaning | Example |",
            "|---|---|---|---|",
        ]
        lines += [_row(variable) for variable in members]
    return "\n".join(lines) + "\n"


def _row(variable: Variable) -> str:
    name = f"`{variable.name}`"
    if is_secret(variable):
        default = "unset" if not variable.default else "(secret, not shown)"
    else:
        default = _code(variable.default) if variable.default else "unset"
    meaning = f"*{_cell(variable.kind)}* — {_cell(variable.help)}"
    if variable.aliases:
        spellings = ", ".join(f"`{alias}`" for alias in variable.aliases)
        meaning += f" Also read as {spellings} (old spelling, accepted with a warning)."
    if variable.switch:
        meaning += f" Only read when {variable.switch} is on."
    example = _code(variable.example) if variable.example else ""
    if is_secret(variable) and variable.example == variable.default:
        example = ""  # without an example of its own, the reader copies the default here
    return f"| {name} | {default} | {meaning} | {example} |"


def _cell(text: str) -> str:
    # A table row is one line, and a bare pipe would end the cell early.
    return " ".join(text.split()).replace("|", "\\|")


def _code(text: str) -> str:
    text = _cell(text)
    if text.startswith("(") and text.endswith(")"):
        return text  # a description such as "(50+ random characters)", not a literal value
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def block(reference: str) -> str:
    return f"{START_MARKER}\n{reference}{END_MARKER}\n"


def find_block(lines: list[str]) -> tuple[int, int] | None:
    """Indexes of the start and end marker lines, ``None`` when the file has no block."""
    stripped = [line.strip() for line in lines]
    starts = [i for i, line in enumerate(stripped) if line == START_MARKER]
    ends = [i for i, line in enumerate(stripped) if line == END_MARKER]
    if not starts and not ends:
        return None
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise CommandError(
            f"expected one line {START_MARKER} followed by one line {END_MARKER}; "
            "fix the markers by hand, then run the command again."
        )
    return starts[0], ends[0]


def with_reference(text: str, reference: str) -> str:
    """``text`` with its block replaced, or the section appended when it has none."""
    lines = text.splitlines(keepends=True)
    where = find_block(lines)
    if where is None:
        if text and not text.endswith("\n"):
            text += "\n"
        separator = "\n" if text else ""
        return f"{text}{separator}{SECTION_TITLE}\n\n{block(reference)}"
    start, end = where
    return "".join(lines[:start]) + block(reference) + "".join(lines[end + 1 :])


def current_reference() -> str:
    return render_reference(settings.ENV_VARIABLES.values())


class Command(BaseCommand):
    help = (
        "Print the reference of every environment variable as Markdown, or write it "
        "into (--write) or compare it with (--check) the block of a README."
    )

    # Documentation must be producible from a broken environment too.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group()
        target.add_argument(
            "--write",
            metavar="FILE",
            type=Path,
            help=f"replace the block between {START_MARKER} and {END_MARKER} in FILE "
            f"(a section '{SECTION_TITLE}' is appended when the markers are missing)",
        )
        target.add_argument(
            "--check",
            metavar="FILE",
            type=Path,
            help="exit non-zero when the block in FILE is missing or out of date",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        reference = current_reference()
        path: Path | None = options["write"] or options["check"]
        if path is None:
            self.stdout.write(reference, ending="")
            return
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            if options["check"]:
                raise CommandError(f"{path}: no such file.") from None
            text = ""
        except OSError as exc:
            raise CommandError(f"{path}: cannot be read ({exc.strerror}).") from exc
        try:
            wanted = with_reference(text, reference)
        except CommandError as exc:
            raise CommandError(f"{path}: {exc}") from None
        if options["check"]:
            if wanted != text:
                raise CommandError(
                    f"{path}: the environment-variable reference is out of date; run "
                    f"`{REGENERATE}` (manage.py kodify_env_reference --write {path})."
                )
            return
        if wanted != text:
            path.write_text(wanted, encoding="utf-8")
            self.stdout.write(f"{path}: environment-variable reference updated.")
        else:
            self.stdout.write(f"{path}: environment-variable reference already up to date.")
