"""What an assistant action needs to know about a programming language.

An action's prompt is only as good as its knowledge of the ecosystem: "add documentation"
means docstrings to a Python developer and ``///`` XML comments to a C# one, "write tests"
means pytest or xUnit or table-driven Go tests.  Naming the convention in the prompt is
what makes a small model follow it instead of a generic style, so each language carries
the sentences the prompts quote.  These sentences are inserted verbatim into a system
prompt (see :mod:`gateway.actions.templates`): each is a complete sentence, and braces
in them are fine (the templates escape them).

Clients name languages in all sorts of ways (VS Code ids, Markdown fence tags, file
extensions), so a language is found by id, alias or the file name's extension.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Language:
    id: str  # a VS Code language id
    name: str  # as a developer writes it in a sentence
    fence: str  # the Markdown fence tag
    extensions: tuple[str, ...]  # with the dot, lower case
    aliases: tuple[str, ...]  # other names, lower case (the id and name need not repeat)
    doc_convention: str
    test_framework: str
    idioms: str  # what an idiomatic fix looks like
    # The comment a test file starts with, naming itself: a model that names the file
    # tells the plugin where to save it.
    test_file_line: str


PYTHON = Language(
    id="python",
    name="Python",
    fence="python",
    extensions=(".py", ".pyi", ".pyw"),
    aliases=("py", "py3", "python3", "python2", "ipython"),
    doc_convention=(
        "Docstrings following PEP 257 (a one-line summary in the imperative mood, a blank "
        "line, then details) with Google style sections `Args:`, `Returns:` (or "
        "`Yields:`) and `Raises:`; a module docstring at the top; keep the type hints "
        "and do not repeat the types in prose."
    ),
    test_framework=(
        "pytest, with plain `assert` statements, fixtures for shared setup, "
        "`pytest.mark.parametrize` for several cases of one behaviour and `pytest.raises` "
        "for exceptions, all in one `test_*.py` file (no `unittest.TestCase` classes)."
    ),
    idioms=(
        "Idiomatic Python uses context managers (`with`) for files, locks and connections, "
        "no mutable default arguments, specific exceptions rather than a bare `except:`, "
        "`is None` for None checks, and no modification of a list while iterating over it."
    ),
    test_file_line="# test_<module>.py",
)

CSHARP = Language(
    id="csharp",
    name="C#",
    fence="csharp",
    extensions=(".cs", ".csx"),
    aliases=("c#", "cs", "c-sharp", "c_sharp", "dotnet"),
    doc_convention=(
        "XML documentation comments (`///`) on every public type and member, with "
        '`<summary>`, one `<param name="...">` per parameter, `<returns>`, and one '
        '`<exception cref="...">` per exception thrown; `<inheritdoc/>` on overrides '
        "and interface implementations."
    ),
    test_framework=(
        "xUnit, with `[Fact]` for single cases, `[Theory]` with `[InlineData]` for several "
        "cases of one behaviour and `Assert.Throws<T>` (or `Assert.ThrowsAsync<T>`) for "
        "exceptions, in a `public class <Name>Tests`; use NUnit instead if the code "
        "already uses it."
    ),
    idioms=(
        "Idiomatic C# uses `using` declarations for everything `IDisposable`, `async`/"
        "`await` all the way down (never `.Result` or `.Wait()`), "
        "`ArgumentNullException.ThrowIfNull` for arguments, nullable reference types "
        "instead of unchecked nulls, `TryParse` rather than catching parse exceptions, and "
        "`lock` or concurrent collections for shared state."
    ),
    test_file_line="// <Name>Tests.cs",
)

JAVA = Language(
    id="java",
    name="Java",
    fence="java",
    extensions=(".java",),
    aliases=("jdk",),
    doc_convention=(
        "Javadoc comments (`/** ... */`) on every public class, constructor and method: a "
        "summary sentence first, then `@param` for each parameter, `@return` and `@throws` "
        "for each exception, checked or not, that a caller should expect."
    ),
    test_framework=(
        "JUnit 5 (`org.junit.jupiter.api`), with `@Test`, `@ParameterizedTest` with "
        "`@ValueSource` or `@CsvSource` for several cases of one behaviour, "
        "`Assertions.assertEquals` and `assertThrows` for exceptions, in a `<Name>Test` "
        "class in the same package as the code under test (no JUnit 4 imports)."
    ),
    idioms=(
        "Idiomatic Java uses try-with-resources for everything `AutoCloseable`, `equals` "
        "rather than `==` for strings and objects, `Objects.requireNonNull` or `Optional` "
        "rather than silent nulls, no swallowed exceptions (catch, then rethrow or handle), "
        "and `synchronized`, atomics or concurrent collections for shared state."
    ),
    test_file_line="// <Name>Test.java",
)

GO = Language(
    id="go",
    name="Go",
    fence="go",
    extensions=(".go",),
    aliases=("golang",),
    doc_convention=(
        "Go doc comments: `//` lines directly above each exported declaration, with no "
        "blank line between, starting with the declared name (`// Parse returns ...`), in "
        "full sentences that say what errors are returned; a `// Package name ...` comment "
        "above the package clause."
    ),
    test_framework=(
        "the standard `testing` package, with table-driven tests (a slice of named cases, "
        "each run with `t.Run`), `t.Errorf`/`t.Fatalf` messages that show got and want, "
        "and `t.Helper()` in helpers, in a `_test.go` file in the same package (no "
        "third-party assertion libraries)."
    ),
    idioms=(
        'Idiomatic Go checks every error (wrapping with `fmt.Errorf("...: %w", err)`), '
        "uses `defer` for cleanup right after acquiring a resource, leaks no goroutines "
        "(cancel through a `context.Context`, close channels from the sending side), guards "
        "shared state with `sync.Mutex` or channels, and never writes to a nil map."
    ),
    test_file_line="// <file>_test.go",
)

JAVASCRIPT = Language(
    id="javascript",
    name="JavaScript",
    fence="javascript",
    extensions=(".js", ".mjs", ".cjs", ".jsx"),
    aliases=("js", "node", "nodejs", "jsx", "mjs", "cjs", "javascriptreact", "ecmascript"),
    doc_convention=(
        "JSDoc comments (`/** ... */`) above every exported function, class and method: a "
        "summary sentence, `@param {type} name` for each parameter, `@returns {type}` and "
        "`@throws {ErrorType}` for each error thrown; `@async` is implied by `async`, so "
        "document what the promise resolves to."
    ),
    test_framework=(
        "Jest, with `describe`/`test`/`expect`, `test.each` for several cases of one "
        "behaviour, `expect(() => ...).toThrow()` and `await expect(...).rejects` for "
        "errors, and `jest.fn()` for test doubles, importing the code with the same module "
        "syntax (`import` or `require`) as the code itself."
    ),
    idioms=(
        "Idiomatic JavaScript uses `===` rather than `==`, `const`/`let` (never `var`), "
        "awaits every promise or handles its rejection, `try`/`finally` for cleanup, no "
        "accidental globals, and explicit checks for `undefined` and `null` (`??`, `?.`)."
    ),
    test_file_line="// <module>.test.js",
)

TYPESCRIPT = Language(
    id="typescript",
    name="TypeScript",
    fence="typescript",
    extensions=(".ts", ".mts", ".cts", ".tsx"),
    aliases=("ts", "tsx", "mts", "cts", "typescriptreact"),
    doc_convention=(
        "TSDoc comments (`/** ... */`) above every exported function, class, interface and "
        "method: a summary sentence, `@param name - description` for each parameter, "
        "`@returns` and `@throws`; the types come from the signatures, so do not repeat "
        "them in braces."
    ),
    test_framework=(
        "Jest with TypeScript (ts-jest), with `describe`/`test`/`expect`, typed imports "
        "of the code under test, `test.each` for several cases of one behaviour, "
        "`toThrow()` and `rejects` for errors, and `jest.fn()` for test doubles."
    ),
    idioms=(
        "Idiomatic TypeScript keeps strict types (no `any`, narrowing instead of non-null "
        "assertions `!`), uses `===`, `const`/`let`, awaits every promise or handles its "
        "rejection, and `try`/`finally` for cleanup."
    ),
    test_file_line="// <module>.test.ts",
)

LANGUAGES: dict[str, Language] = {
    language.id: language for language in (PYTHON, CSHARP, JAVA, GO, JAVASCRIPT, TYPESCRIPT)
}


@dataclass(frozen=True, slots=True)
class Sample:
    """A request as a plugin would send it, for the console's preview of a template.

    Each has a small bug (an empty input not handled) so that every action has something
    to say about it.
    """

    language: str  # as a client names it
    filepath: str
    code: str


SAMPLES: dict[str, Sample] = {
    "python": Sample(
        "python",
        "stats/mean.py",
        "def mean(values: list[float]) -> float:\n    return sum(values) / len(values)\n",
    ),
    "csharp": Sample(
        "csharp",
        "Stats/Mean.cs",
        "public static double Mean(IReadOnlyList<double> values)\n{\n"
        "    return values.Sum() / values.Count;\n}\n",
    ),
    "java": Sample(
        "java",
        "src/main/java/stats/Stats.java",
        "public static double mean(List<Double> values) {\n"
        "    return values.stream().mapToDouble(Double::doubleValue).sum() / values.size();\n}\n",
    ),
    "go": Sample(
        "go",
        "stats/mean.go",
        "func Mean(values []float64) float64 {\n\tsum := 0.0\n\tfor _, v := range values {\n"
        "\t\tsum += v\n\t}\n\treturn sum / float64(len(values))\n}\n",
    ),
    "javascript": Sample(
        "javascript",
        "lib/stats.js",
        "export function mean(values) {\n"
        "  return values.reduce((a, b) => a + b, 0) / values.length;\n}\n",
    ),
    "typescript": Sample(
        "typescript",
        "src/stats.ts",
        "export function mean(values: number[]): number {\n"
        "  return values.reduce((a, b) => a + b, 0) / values.length;\n}\n",
    ),
    # The generic templates: a language the server has no conventions for.
    "": Sample(
        "rust",
        "src/stats.rs",
        "pub fn mean(values: &[f64]) -> f64 {\n"
        "    values.iter().sum::<f64>() / values.len() as f64\n}\n",
    ),
}
assert set(SAMPLES) == {*LANGUAGES, ""}


def _names() -> dict[str, Language]:
    names: dict[str, Language] = {}
    for language in LANGUAGES.values():
        for name in (language.id, language.name.lower(), language.fence, *language.aliases):
            if names.setdefault(name, language) is not language:
                raise ValueError(f"{name!r} names two languages")
    return names


def _extensions() -> dict[str, Language]:
    found: dict[str, Language] = {}
    for language in LANGUAGES.values():
        for suffix in language.extensions:
            if found.setdefault(suffix, language) is not language:
                raise ValueError(f"{suffix!r} is the extension of two languages")
    return found


_BY_NAME = _names()
_BY_EXTENSION = _extensions()


def extension(filepath: str) -> str:
    """The file name's extension, lower case with its dot, or "" (``.bashrc`` has none).

    Plain slicing rather than :mod:`pathlib`: Windows paths come from editors too, and
    this runs on every request.
    """
    name = filepath.rstrip().replace("\\", "/").rpartition("/")[2]
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def resolve_language(language: str | None, filepath: str | None = None) -> Language | None:
    """The language a client means, by name first, else by the file's extension.

    The name wins because the editor knows the buffer's language even when the file has
    an unusual extension (or none yet).  None means the generic prompts, which name the
    language as the client gave it.
    """
    if language:
        found = _BY_NAME.get(language.strip().lower())
        if found is not None:
            return found
    if filepath:
        return _BY_EXTENSION.get(extension(filepath))
    return None


@dataclass(frozen=True, slots=True)
class Extracted:
    """What a chat message holds for an action: code, and the words around it.

    A dataclass rather than a tuple because a plugin may name the file in the fence's
    info string (```` ```python src/app.py ````), and that path is worth keeping: it
    picks the language when the tag does not, and the prompt shows it.
    """

    code: str
    language_tag: str | None  # the fence's tag, as written
    filepath: str | None  # the file named in the fence's info string
    instructions: str  # the text outside the code block, stripped: the user's own words


def _looks_like_path(word: str) -> bool:
    return ("/" in word or "\\" in word or "." in word.strip(".")) and "=" not in word


def _info(info: str) -> tuple[str | None, str | None]:
    """The tag and file path in a fence's info string: ``python``, ``python src/app.py``,
    or a lone ``src/app.py`` (some plugins write only the path)."""
    if not info or info.startswith("{"):  # empty, or attributes (``{.python}``): no tag
        return None, None
    words = info.split(maxsplit=1)
    tag = words[0]
    if len(words) == 2:
        rest = words[1].strip()
        return tag, rest if _looks_like_path(rest) and not rest.startswith("{") else None
    if tag.lower() not in _BY_NAME and _looks_like_path(tag):
        return None, tag
    return tag, None


def _opening(line: str) -> tuple[str, int, str] | None:
    """The fence a line opens (its character, length and info string), if it does.

    CommonMark's rules, so that code quoting Markdown is not cut short: up to three
    spaces of indentation, three or more backticks or tildes, and no backtick in a
    backtick fence's info string (```` ```x``` ```` on one line is inline code).
    """
    text = line.lstrip(" ")
    if len(line) - len(text) > 3 or text[:3] not in ("```", "~~~"):
        return None
    char = text[0]
    length = len(text) - len(text.lstrip(char))
    info = text[length:].strip()
    if char == "`" and "`" in info:
        return None
    return char, length, info


def _closes(line: str, char: str, length: int) -> bool:
    text = line.lstrip(" ")
    if len(line) - len(text) > 3:
        return False
    text = text.rstrip()
    return len(text) >= length and text == char * len(text)


def _fence_lines(text: str) -> list[int]:
    """Where the lines that may be fences start: those with ``` or ~~~ after at most three
    spaces.  Found with ``str.find``, so a long message costs a few C-speed scans rather
    than a Python loop over every line."""
    starts: set[int] = set()
    for marker in ("```", "~~~"):
        at = text.find(marker)
        while at != -1:
            start = text.rfind("\n", 0, at) + 1
            if at - start <= 3 and text[start:at] == " " * (at - start):
                starts.add(start)
            end = text.find("\n", at)
            at = -1 if end == -1 else text.find(marker, end)
    return sorted(starts)


def _line_end(text: str, start: int) -> int:
    end = text.find("\n", start)
    return len(text) if end == -1 else end


def code_from_message(text: str) -> Extracted:
    """The code a chat user sent (``Explain this:`` then a fenced block) and their words.

    The last fenced block is the code: a message that quotes earlier code usually ends
    with the code it asks about, and earlier blocks stay in the instructions, where the
    model still sees them.  Without a fence the whole text is the code: plugins that send
    a bare selection do exactly that.  An unterminated fence (a message cut short, or a
    plugin that never closes it) makes everything after it code.
    """
    if "```" not in text and "~~~" not in text:
        return Extracted(text, None, None, "")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    starts = _fence_lines(text)
    # The last block: its opening line's start and end, its closing line's start, info.
    block: tuple[int, int, int | None, str] | None = None
    index, count = 0, len(starts)
    while index < count:
        start = starts[index]
        end = _line_end(text, start)
        opening = _opening(text[start:end])
        if opening is None:
            index += 1
            continue
        char, length, info = opening
        close = index + 1
        while close < count and not _closes(
            text[starts[close] : _line_end(text, starts[close])], char, length
        ):
            close += 1
        block = (start, end, starts[close] if close < count else None, info)
        index = close + 1
    if block is None:
        return Extracted(text, None, None, "")
    start, end, close_start, info = block
    if close_start is None:  # unterminated: the rest is code
        code, after = text[end + 1 :], ""
    else:
        code = text[end + 1 : close_start - 1]  # "" when the closing line comes next
        after = text[_line_end(text, close_start) + 1 :].strip()
    before = text[:start].strip()
    instructions = f"{before}\n{after}" if before and after else before or after
    tag, filepath = _info(info)
    return Extracted(code, tag, filepath, instructions)
