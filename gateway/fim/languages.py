"""What autocompletion needs to know about a programming language.

The comment syntax (context snippets go into the prompt as comments in the file's
language) and the stop words: text that, at the start of a line, begins a new top-level
definition, so a completion that reaches it has finished the code at the cursor.

Tabby clients send VS Code's language identifiers (``python``, ``csharp``,
``typescriptreact``…); other clients send all sorts of names, so aliases and the file's
extension are accepted too.  Anything unknown gets :data:`GENERIC`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

# A blank line ends a completion in every language: the model has finished one thought.
BLANK_LINE = "\n\n"


@dataclass(frozen=True, slots=True)
class Language:
    id: str
    comment_start: str  # a line comment, or the opening of a block comment
    comment_end: str = ""  # closes a block comment, for languages without line comments
    keywords: tuple[str, ...] = ()  # top-level keywords, each ending a completion
    # Python-like: blocks are made by indentation alone, never closed by a bracket line.
    indentation_blocks: bool = False
    # The blank line, then each keyword at the start of a line.
    stop_words: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        stop = (BLANK_LINE, *(f"\n{keyword}" for keyword in self.keywords))
        object.__setattr__(self, "stop_words", stop)

    def comment(self, line: str) -> str:
        """``line`` as a comment in this language (no trailing space on an empty line)."""
        text = f"{self.comment_start} {line}" if line else self.comment_start
        return f"{text} {self.comment_end}" if self.comment_end else text

    def comment_lines(self, text: str) -> str:
        """Every line of ``text`` as a comment, as :meth:`comment` would make each (but
        for a trailing space after a line's own comment marker, which may go).

        In whole-string operations rather than a call per line: a prompt's context is
        hundreds of lines, rendered on every keystroke-triggered request.
        """
        if self.comment_end:
            return "\n".join(self.comment(line) for line in text.split("\n"))
        lead = self.comment_start + " "
        block = lead + text.replace("\n", "\n" + lead)
        if lead + "\n" in block:  # empty lines: no trailing space
            block = block.replace(lead + "\n", self.comment_start + "\n")
        return block[:-1] if block.endswith(lead) else block  # an empty last line


PYTHON = Language(
    "python",
    "#",
    keywords=("def ", "async def ", "class ", "if __name__", "@", "import ", "from "),
    indentation_blocks=True,
)
CSHARP = Language(
    "csharp",
    "//",
    keywords=(
        "public ",
        "internal ",
        "private ",
        "protected ",
        "class ",
        "namespace ",
        "using ",
        "[",
        "#region",
    ),
)
JAVA = Language(
    "java",
    "//",
    keywords=(
        "public ",
        "private ",
        "protected ",
        "class ",
        "interface ",
        "enum ",
        "record ",
        "abstract ",
        "final ",
        "import ",
        "package ",
        "@",
    ),
)
GO = Language(
    "go",
    "//",
    keywords=("func ", "type ", "var ", "const ", "import ", "package "),
)
JAVASCRIPT = Language(
    "javascript",
    "//",
    keywords=(
        "function ",
        "async function ",
        "class ",
        "export ",
        "import ",
        "const ",
        "let ",
        "var ",
        "module.exports",
    ),
)
TYPESCRIPT = Language(
    "typescript",
    "//",
    keywords=(*JAVASCRIPT.keywords, "interface ", "type ", "enum ", "declare ", "namespace "),
)
KOTLIN = Language(
    "kotlin",
    "//",
    keywords=("fun ", "class ", "object ", "interface ", "data class ", "import ", "package "),
)
RUST = Language(
    "rust",
    "//",
    keywords=("fn ", "pub ", "impl ", "struct ", "enum ", "trait ", "mod ", "use ", "#["),
)
C = Language("c", "//", keywords=("#include", "#define", "typedef ", "struct ", "static "))
CPP = Language(
    "cpp",
    "//",
    keywords=(*C.keywords, "namespace ", "class ", "template", "using "),
)
PHP = Language("php", "//", keywords=("function ", "class ", "namespace ", "use "))
RUBY = Language("ruby", "#", keywords=("def ", "class ", "module ", "require "))
SHELL = Language("shellscript", "#", keywords=("function ",))
SQL = Language("sql", "--", keywords=("SELECT ", "INSERT ", "UPDATE ", "CREATE ", "DROP "))
LUA = Language("lua", "--", keywords=("function ", "local function "))
HTML = Language("html", "<!--", "-->")
GENERIC = Language("generic", "#")

LANGUAGES: dict[str, Language] = {
    language.id: language
    for language in (
        PYTHON,
        CSHARP,
        JAVA,
        GO,
        JAVASCRIPT,
        TYPESCRIPT,
        KOTLIN,
        RUST,
        C,
        CPP,
        PHP,
        RUBY,
        SHELL,
        SQL,
        LUA,
        HTML,
        GENERIC,
    )
}

_ALIASES = {
    "py": PYTHON,
    "python3": PYTHON,
    "c#": CSHARP,
    "cs": CSHARP,
    "c_sharp": CSHARP,
    "golang": GO,
    "js": JAVASCRIPT,
    "jsx": JAVASCRIPT,
    "javascriptreact": JAVASCRIPT,
    "node": JAVASCRIPT,
    "ts": TYPESCRIPT,
    "tsx": TYPESCRIPT,
    "typescriptreact": TYPESCRIPT,
    "kt": KOTLIN,
    "rs": RUST,
    "c++": CPP,
    "cxx": CPP,
    "rb": RUBY,
    "bash": SHELL,
    "sh": SHELL,
    "shell": SHELL,
    "zsh": SHELL,
    "xml": HTML,
    "vue": HTML,
}

_EXTENSIONS = {
    ".py": PYTHON,
    ".pyi": PYTHON,
    ".cs": CSHARP,
    ".java": JAVA,
    ".go": GO,
    ".js": JAVASCRIPT,
    ".mjs": JAVASCRIPT,
    ".cjs": JAVASCRIPT,
    ".jsx": JAVASCRIPT,
    ".ts": TYPESCRIPT,
    ".mts": TYPESCRIPT,
    ".tsx": TYPESCRIPT,
    ".kt": KOTLIN,
    ".kts": KOTLIN,
    ".rs": RUST,
    ".c": C,
    ".h": C,
    ".cc": CPP,
    ".cpp": CPP,
    ".cxx": CPP,
    ".hpp": CPP,
    ".php": PHP,
    ".rb": RUBY,
    ".sh": SHELL,
    ".bash": SHELL,
    ".sql": SQL,
    ".lua": LUA,
    ".html": HTML,
    ".xml": HTML,
}


def language_for(name: str | None, filepath: str | None = None) -> Language:
    """The language called ``name``, else the one of ``filepath``'s extension, else generic."""
    if name:
        key = name.strip().lower()
        found = LANGUAGES.get(key) or _ALIASES.get(key)
        if found is not None:
            return found
    if filepath:
        suffix = PurePosixPath(filepath.replace("\\", "/")).suffix.lower()
        found = _EXTENSIONS.get(suffix)
        if found is not None:
            return found
    return GENERIC
