"""Typed readers for environment variables.

Every variable Kodify reads is declared here through an :class:`Env` reader, which
records its name, default, meaning and an example.  That record is the single source
of the administrator's reference (``manage.py kodify_env_reference``), so the documentation
cannot drift from the code.

A bad value never raises at import time: the reader keeps the default, remembers the
problem, and the system check ``kodify.E001`` turns each problem into one clear line that
stops the start (see ``kodify_site/checks.py``).  Variables read only when a switch is on
(:meth:`Env.only_when`) are the exception: while it is off nothing uses them, so a bad
value of theirs is a warning (``kodify.W001``) instead.
"""

from __future__ import annotations

import builtins  # Env.str, Env.bool… hide the built-in names inside the class body
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")
D = TypeVar("D")

TRUE_WORDS = frozenset({"1", "true", "yes", "on", "y", "t"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", "n", "f", ""})


@dataclass(frozen=True)
class Variable:
    """One documented environment variable."""

    name: str
    kind: str
    default: str
    help: str
    example: str
    group: str
    aliases: tuple[str, ...] = ()
    # The boolean variable that must be on for this one to be read; "": always read.
    switch: str = ""


@dataclass
class Env:
    """Reads variables from ``environ`` and records what it read and what was wrong."""

    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    variables: dict[str, Variable] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    group: str = "General"
    # (name, value) of the switch the variables being declared depend on (only_when).
    _switch: tuple[str, bool] | None = field(default=None, init=False, repr=False)

    # -- bookkeeping -------------------------------------------------------------------

    def _declare(
        self,
        name: str,
        kind: str,
        default: Any,
        help: str,
        example: str | None,
        aliases: tuple[str, ...] = (),
    ) -> None:
        shown = "" if default is None else _show(default)
        self.variables[name] = Variable(
            name=name,
            kind=kind,
            default=shown,
            help=help,
            example=example if example is not None else shown,
            group=self.group,
            aliases=aliases,
            switch=self._switch[0] if self._switch else "",
        )

    @contextmanager
    def only_when(self, switch: str, on: builtins.bool) -> Iterator[None]:
        """Variables declared inside are read only when the boolean variable ``switch`` is
        on (``on`` is its value); the reference says so.

        While it is off nothing uses them, so a bad value of theirs (a placeholder such as
        ``<PORT>`` left from an example, say) is a warning rather than a problem that
        stops the start.
        """
        self._switch = (switch, on)
        try:
            yield
        finally:
            self._switch = None

    def raw(self, name: str, aliases: tuple[str, ...] = ()) -> str | None:
        """The raw value, surrounding blanks removed; ``None`` when unset or blank."""
        found = self._lookup(name, aliases)
        return found[1] if found else None

    def _lookup(self, name: str, aliases: tuple[str, ...]) -> tuple[str, str] | None:
        """(the spelling that was set, its value without surrounding blanks); ``None``
        when unset or blank."""
        spelling, value = name, self.environ.get(name)
        if value is None:
            for alias in aliases:
                value = self.environ.get(alias)
                if value is not None:
                    spelling = alias
                    self.warnings.append(
                        f"{alias} is an old spelling of {name}; it is accepted, "
                        f"but please rename it to {name}."
                    )
                    break
        if value is None:
            return None
        value = value.strip()
        return (spelling, value) if value else None

    def is_set(self, name: str) -> bool:
        return self.raw(name) is not None

    def _parse(
        self,
        name: str,
        kind: str,
        default: D,
        help: str,
        example: str | None,
        convert: Callable[[str], T],
        aliases: tuple[str, ...] = (),
        secret: bool = False,
    ) -> T | D:
        self._declare(name, kind, default, help, example, aliases)
        found = self._lookup(name, aliases)
        if found is None:
            return default
        spelling, value = found
        try:
            return convert(value)
        except ValueError as exc:
            # Named as the administrator wrote it (an old spelling too), and a secret's
            # value never reaches a log line, even when it is wrong.
            shown = spelling if secret else f"{spelling}={value!r}"
            if self._switch is not None and not self._switch[1]:
                self.warnings.append(
                    f"{shown} is not valid: {exc}; it is ignored because {self._switch[0]} is off."
                )
            else:
                self.problems.append(f"{shown} is not valid: {exc}.")
            return default

    # -- typed readers -----------------------------------------------------------------

    def str(
        self,
        name: str,
        default: str | None = None,
        *,
        help: str,
        example: str | None = None,
        choices: tuple[str, ...] | None = None,
        pattern: tuple[builtins.str, builtins.str] | None = None,
        secret: bool = False,
        aliases: tuple[str, ...] = (),
    ) -> Any:
        """``pattern``: (regular expression the whole value must match, what it allows)."""

        def convert(value: str) -> str:
            if pattern is not None and not re.fullmatch(pattern[0], value):
                raise ValueError("expected " + pattern[1])
            if choices is not None:
                for choice in choices:
                    if value.lower() == choice.lower():
                        return choice
                raise ValueError("expected one of " + ", ".join(choices))
            return value

        kind = "one of " + "/".join(choices) if choices else ("secret" if secret else "string")
        return self._parse(name, kind, default, help, example, convert, aliases, secret=secret)

    def bool(
        self,
        name: builtins.str,
        default: bool = False,
        *,
        help: builtins.str,
        example: builtins.str | None = None,
    ) -> bool:
        def convert(value: str) -> bool:
            word = value.lower()
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
            raise ValueError("expected true or false")

        return self._parse(name, "boolean", default, help, example or "true", convert)

    def int(
        self,
        name: builtins.str,
        default: int,
        *,
        help: builtins.str,
        example: builtins.str | None = None,
        minimum: int | None = None,
        maximum: int | None = None,
        aliases: tuple[builtins.str, ...] = (),
    ) -> int:
        def convert(value: str) -> int:
            try:
                number = int(value)
            except ValueError:
                raise ValueError("expected a whole number") from None
            _check_range(number, minimum, maximum)
            return number

        return self._parse(name, "integer", default, help, example, convert, aliases)

    def float(
        self,
        name: builtins.str,
        default: float,
        *,
        help: builtins.str,
        example: builtins.str | None = None,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        def convert(value: str) -> float:
            try:
                number = float(value)
            except ValueError:
                raise ValueError("expected a number") from None
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError("expected a finite number")
            _check_range(number, minimum, maximum)
            return number

        return self._parse(name, "number", default, help, example, convert)

    def list(
        self,
        name: builtins.str,
        default: tuple[builtins.str, ...] = (),
        *,
        help: builtins.str,
        example: builtins.str | None = None,
        item: Callable[[builtins.str], builtins.str] | None = None,
    ) -> tuple[builtins.str, ...]:
        def convert(value: str) -> tuple[str, ...]:
            items = tuple(part.strip() for part in value.split(",") if part.strip())
            return tuple(item(part) for part in items) if item else items

        return self._parse(name, "comma-separated list", default, help, example, convert)

    def url(
        self,
        name: builtins.str,
        default: builtins.str | None = None,
        *,
        help: builtins.str,
        example: builtins.str | None = None,
        schemes: tuple[builtins.str, ...] = ("http", "https"),
        secret: builtins.bool = False,
    ) -> Any:
        def convert(value: str) -> str:
            return check_url(value, schemes)

        kind = "URL (secret)" if secret else "URL"
        return self._parse(name, kind, default, help, example, convert, secret=secret)

    def path(
        self,
        name: builtins.str,
        default: builtins.str | None,
        *,
        help: builtins.str,
        example: builtins.str | None = None,
        base: Path | None = None,
    ) -> Any:
        def convert(value: str) -> Path:
            path = Path(value).expanduser()
            if not path.is_absolute() and base is not None:
                path = base / path
            return path

        value = self._parse(name, "path", default, help, example, convert)
        if isinstance(value, str):
            return convert(value)
        return value


def check_url(value: str, schemes: tuple[str, ...]) -> str:
    """Return ``value`` when it is an absolute URL with one of ``schemes``."""
    parts = urlsplit(value)
    scheme = parts.scheme.lower().split("+", 1)[0]
    if scheme not in schemes:
        raise ValueError("expected a URL starting with " + " or ".join(f"{s}://" for s in schemes))
    # sqlite:////path and unix:///socket name files, not hosts.
    if not parts.hostname and scheme not in ("sqlite", "unix"):
        raise ValueError("the URL has no host")
    try:
        parts.port  # noqa: B018 - urlsplit validates the port lazily
    except ValueError:
        raise ValueError("the URL has an invalid port") from None
    return value


def _check_range(number: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and number < minimum:
        raise ValueError(f"must be at least {minimum}")
    if maximum is not None and number > maximum:
        raise ValueError(f"must be at most {maximum}")


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)
