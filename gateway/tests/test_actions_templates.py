"""The assistant actions' prompts: what the model is told for each action and language,
and how chat requests to action models become those prompts."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.actions import ACTIONS
from gateway.actions.languages import (
    CSHARP,
    GO,
    JAVA,
    JAVASCRIPT,
    LANGUAGES,
    PYTHON,
    TYPESCRIPT,
    Extracted,
    code_from_message,
    resolve_language,
)
from gateway.actions.templates import (
    PLACEHOLDERS,
    Template,
    action_and_model,
    action_model_name,
    build_messages,
    messages_for_chat,
    shipped_template,
)

pytestmark = pytest.mark.smoke

FIVE = ("python", "csharp", "java", "go", "javascript")

CODE = {
    "python": "def ratio(a: int, b: int) -> float:\n    return a / b\n",
    "csharp": "public static double Ratio(int a, int b)\n{\n    return (double)a / b;\n}",
    "java": "public static double ratio(int a, int b) {\n    return (double) a / b;\n}",
    "go": "func Ratio(a, b int) float64 {\n\treturn float64(a) / float64(b)\n}",
    "javascript": "export function ratio(a, b) {\n  return a / b;\n}",
}
PATHS = {
    "python": "src/stats.py",
    "csharp": "Stats/Ratio.cs",
    "java": "src/main/java/Stats.java",
    "go": "stats/ratio.go",
    "javascript": "lib/stats.mjs",
}
FENCES = {
    "python": "python",
    "csharp": "csharp",
    "java": "java",
    "go": "go",
    "javascript": "javascript",
}
TASKS = {
    "docs": "Add documentation to this code:",
    "fix": "Find and fix the bugs in this code:",
    "tests": "Write unit tests for this code:",
    "explain": "Explain this code:",
}

# What each system prompt must name: the ecosystem's own convention, framework or idioms.
MENTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("docs", "python"): ("PEP 257", "Args:", "Returns:", "Raises:"),
    ("docs", "csharp"): ("XML documentation comments", "///", "<summary>", "<exception"),
    ("docs", "java"): ("Javadoc", "/**", "@param", "@return", "@throws"),
    ("docs", "go"): ("Go doc comments", "directly above", "starting with the declared name"),
    ("docs", "javascript"): ("JSDoc", "@param {type} name", "@returns {type}", "@throws"),
    ("fix", "python"): ("context managers", "mutable default arguments", "bare `except:`"),
    ("fix", "csharp"): ("`using`", "`.Result`", "IDisposable"),
    ("fix", "java"): ("try-with-resources", "AutoCloseable"),
    ("fix", "go"): ("checks every error", "`defer`", "goroutines"),
    ("fix", "javascript"): ("`===`", "promise"),
    ("tests", "python"): ("pytest", "pytest.mark.parametrize", "fixtures", "# test_<module>.py"),
    ("tests", "csharp"): ("xUnit", "[Fact]", "[Theory]", "[InlineData]", "NUnit"),
    ("tests", "java"): ("JUnit 5", "org.junit.jupiter.api", "@ParameterizedTest", "assertThrows"),
    ("tests", "go"): ("`testing`", "t.Run", "table-driven", "_test.go", "same package"),
    ("tests", "javascript"): ("Jest", "describe", "expect", "// <module>.test.js"),
    ("explain", "python"): ("Python",),
    ("explain", "csharp"): ("C#",),
    ("explain", "java"): ("Java",),
    ("explain", "go"): ("Go",),
    ("explain", "javascript"): ("JavaScript",),
}


def system_of(messages: list[dict[str, str]]) -> str:
    assert [message["role"] for message in messages] == ["system", "user"]
    return messages[0]["content"]


def user_of(messages: list[dict[str, str]]) -> str:
    return messages[1]["content"]


@pytest.mark.parametrize("language", FIVE)
@pytest.mark.parametrize("action", ACTIONS)
def test_each_action_and_language_bare(action: str, language: str) -> None:
    code = CODE[language]
    messages = build_messages(action, code=code, language=language)

    system = system_of(messages)
    for mention in MENTIONS[action, language]:
        assert mention in system, mention
    assert LANGUAGES[language].name in system
    for name in PLACEHOLDERS:  # every placeholder filled, every quoted brace unescaped
        assert f"{{{name}}}" not in system
    assert "{{" not in system
    if action != "explain":
        assert f"exactly one fenced code block tagged `{FENCES[language]}`" in system
    # Nothing but the task and the code: no empty file, context or instructions section.
    fence = FENCES[language]
    assert user_of(messages) == f"{TASKS[action]}\n\n```{fence}\n{code.rstrip()}\n```"


@pytest.mark.parametrize("language", FIVE)
@pytest.mark.parametrize("action", ACTIONS)
def test_each_action_and_language_with_everything(action: str, language: str) -> None:
    code, fence = CODE[language], FENCES[language]
    context = "\n// the lines around the selection\nconst LIMIT = 10\n"
    messages = build_messages(
        action,
        code=code,
        language=language,
        filepath=PATHS[language],
        context=context,
        instructions="  Keep it short.  ",
    )

    assert user_of(messages) == (
        f"File: {PATHS[language]}\n"
        "\n"
        "Context (surrounding code, for reference only; do not change it):\n"
        f"```{fence}\n"
        "// the lines around the selection\n"
        "const LIMIT = 10\n"
        "```\n"
        "\n"
        f"{TASKS[action]}\n"
        "\n"
        f"```{fence}\n"
        f"{code.rstrip()}\n"
        "```\n"
        "\n"
        "Additional instructions:\n"
        "Keep it short."
    )
    # The system prompt does not depend on what the user message carries.
    assert system_of(messages) == system_of(build_messages(action, code="x", language=language))


@pytest.mark.parametrize(
    ("filepath", "context", "instructions", "expected"),
    [
        ("a.py", None, None, "File: a.py\n\nExplain this code:\n\n```python\nx = 1\n```"),
        (
            None,
            "import os",
            None,
            "Context (surrounding code, for reference only; do not change it):\n"
            "```python\nimport os\n```\n\nExplain this code:\n\n```python\nx = 1\n```",
        ),
        (
            None,
            "  \n",
            "Why?",
            "Explain this code:\n\n```python\nx = 1\n```\n\nAdditional instructions:\nWhy?",
        ),
        ("  ", "", "   ", "Explain this code:\n\n```python\nx = 1\n```"),
    ],
)
def test_each_section_alone_and_blank_ones_left_out(
    filepath: str | None, context: str | None, instructions: str | None, expected: str
) -> None:
    messages = build_messages(
        "explain",
        code="\n\nx = 1\n\n",
        language="python",
        filepath=filepath,
        context=context,
        instructions=instructions,
    )

    assert user_of(messages) == expected


def test_fix_asks_for_one_block_first_then_the_list() -> None:
    system = system_of(build_messages("fix", code="x = 1", language="python"))

    block = system.index("First, the complete corrected code in exactly one fenced code block")
    assert block < system.index("Then a short list of what was wrong and why")
    assert "not a diff or an excerpt" in system
    assert "no other code block anywhere in the answer" in system
    assert "If there is no bug, return the code unchanged in the block" in system
    for kind in ("logic errors", "edge cases", "resource leaks", "error handling", "concurrency"):
        assert kind in system


def test_tests_ask_for_one_runnable_file() -> None:
    system = system_of(build_messages("tests", code="func F() {}", language="go"))

    assert "ONE complete, runnable test file in exactly one fenced code block tagged `go`" in (
        system
    )
    assert "every import included" in system
    assert "no placeholders" in system
    assert "must not depend on the network, the current date or time" in system
    assert "The first line of the file is a comment naming it, such as `// <file>_test.go`" in (
        system
    )
    for cases in ("normal cases", "edge cases", "error cases"):
        assert cases in system


def test_docs_change_no_behaviour_and_answer_with_the_whole_code() -> None:
    system = system_of(build_messages("docs", code="int f();", language="java"))

    assert "Change no behaviour" in system
    assert "the whole documented code in exactly one fenced code block tagged `java`" in system
    assert "nothing before it" in system
    for part in ("purpose", "each parameter", "the return value", "errors"):
        assert part in system


def test_explain_is_for_a_reader_who_did_not_write_it() -> None:
    system = system_of(build_messages("explain", code="x", language="go"))

    assert "a developer who did not write it" in system
    for part in ("Purpose", "Inputs and outputs", "step by step", "Potential pitfalls"):
        assert part in system
    assert "concise" in system
    assert "backticks" in system


def test_typescript_has_its_own_conventions() -> None:
    messages = build_messages("docs", code="export const f = (): void => {};", filepath="a.tsx")

    assert "TSDoc" in system_of(messages)
    assert "```typescript\n" in user_of(messages)
    assert "Jest" in system_of(build_messages("tests", code="f()", language="ts"))


@pytest.mark.parametrize("action", ACTIONS)
def test_an_unknown_language_gets_the_generic_prompt_with_its_name(action: str) -> None:
    messages = build_messages(action, code="fn main() {}", language="Rust")

    system = system_of(messages)
    assert "an expert software developer" in system
    assert "{" not in system
    for known in ("pytest", "PEP 257", "JUnit", "xUnit", "Jest", "Go doc"):
        assert known not in system
    if action != "explain":
        assert "of Rust" in system
    assert user_of(messages) == f"{TASKS[action]}\n\n```rust\nfn main() {{}}\n```"


def test_the_generic_prompts_without_any_language() -> None:
    tests = build_messages("tests", code="main = putStrLn 1")
    docs = build_messages("docs", code="x", language=None, filepath="Main.hs")

    assert "the usual test framework of the code's language" in system_of(tests)
    assert "the standard documentation-comment convention of the code's language" in (
        system_of(docs)
    )
    assert user_of(tests).endswith("```\nmain = putStrLn 1\n```")  # no tag at all
    assert "```hs\nx\n```" in user_of(docs)  # the extension, as a tag
    assert "{language}" in shipped_template("tests", None).system  # named per request


def test_a_language_name_that_is_no_tag_gets_an_untagged_fence() -> None:
    messages = build_messages("fix", code="x", language="Visual Basic")

    assert "of Visual Basic" in system_of(messages)
    assert "```\nx\n```" in user_of(messages)


def test_shipped_templates_are_built_once() -> None:
    assert shipped_template("docs", PYTHON) is shipped_template("docs", PYTHON)
    assert shipped_template("docs", PYTHON) != shipped_template("docs", GO)
    assert shipped_template("docs", PYTHON).user == shipped_template("docs", GO).user


@pytest.mark.parametrize(
    "call",
    [
        lambda: build_messages("refactor", code="x"),
        lambda: shipped_template("refactor", PYTHON),
        lambda: action_model_name("m", "refactor"),
        lambda: messages_for_chat("refactor", [{"role": "user", "content": "x"}]),
    ],
)
def test_an_unknown_action_is_refused_with_the_list(call: Any) -> None:
    with pytest.raises(ValueError, match=r"'refactor'.*docs, fix, tests, explain"):
        call()


def test_blank_code_is_refused() -> None:
    with pytest.raises(ValueError, match="no code"):
        build_messages("explain", code=" \n\t\n", language="python")


def test_braces_in_code_context_instructions_and_path_survive_verbatim() -> None:
    code = 'def f():\n    return {"a": {}, "b": "{code}"}  # {language} {0} {} }{'
    context = "TEMPLATE = '{fence} {{ticks}}'"
    instructions = "Mention {instructions_block} and {"
    filepath = "src/{app}.py"

    messages = build_messages(
        "docs",
        code=code,
        language="python",
        filepath=filepath,
        context=context,
        instructions=instructions,
    )

    user = user_of(messages)
    assert f"```python\n{code}\n```" in user
    assert f"```python\n{context}\n```" in user
    assert user.endswith(f"Additional instructions:\n{instructions}")
    assert user.startswith(f"File: {filepath}\n\n")


def test_code_holding_a_fence_gets_a_longer_one() -> None:
    code = 'HELP = """\n```bash\nmake\n```\n"""'

    user = user_of(build_messages("explain", code=code, language="python"))

    assert user == f"Explain this code:\n\n````python\n{code}\n````"


def test_a_custom_template_is_used_and_a_broken_one_refused() -> None:
    custom = Template(system="Document {language}.", user="{fence}|{code}|{filepath_line}")

    messages = build_messages("docs", code="x {y}", language="go", template=custom)

    assert messages == [
        {"role": "system", "content": "Document Go."},
        {"role": "user", "content": "go|x {y}|"},
    ]
    for broken in ("{nope}", "{", "{0}"):
        with pytest.raises(ValueError, match="placeholders"):
            build_messages("docs", code="x", template=Template(system=broken, user=""))


def test_every_placeholder_is_documented_and_used() -> None:
    user = shipped_template("fix", None).user
    for name in PLACEHOLDERS:
        assert f"{{{name}}}" in user or name == "language", name


@pytest.mark.parametrize(
    ("language", "filepath", "expected"),
    [
        ("python", None, PYTHON),
        ("Python", None, PYTHON),
        (" py ", None, PYTHON),
        ("python3", None, PYTHON),
        ("C#", None, CSHARP),
        ("cs", None, CSHARP),
        ("csharp", None, CSHARP),
        ("java", None, JAVA),
        ("golang", None, GO),
        ("Go", None, GO),
        ("js", None, JAVASCRIPT),
        ("node", None, JAVASCRIPT),
        ("jsx", None, JAVASCRIPT),
        ("mjs", None, JAVASCRIPT),
        ("javascriptreact", None, JAVASCRIPT),
        ("ts", None, TYPESCRIPT),
        ("typescriptreact", None, TYPESCRIPT),
        (None, "src/app.py", PYTHON),
        (None, "Program.CS", CSHARP),
        (None, "src/main/java/App.java", JAVA),
        (None, "cmd/main.go", GO),
        (None, "index.js", JAVASCRIPT),
        (None, "lib/index.mjs", JAVASCRIPT),
        (None, "lib/index.cjs", JAVASCRIPT),
        (None, "App.jsx", JAVASCRIPT),
        (None, "a.ts", TYPESCRIPT),
        (None, "App.tsx", TYPESCRIPT),
        (None, r"C:\work\app\main.py", PYTHON),
        ("", "main.go", GO),
        ("plaintext", "main.go", GO),  # an unknown name: the extension decides
        ("python", "Main.java", PYTHON),  # the editor's language beats the extension
        ("rust", None, None),
        ("rust", "main.rs", None),
        (None, "Makefile", None),
        (None, ".py", None),  # a hidden file, not an extension
        (None, "src.py/README", None),
        (None, None, None),
    ],
)
def test_resolve_language(language: str | None, filepath: str | None, expected: Any) -> None:
    assert resolve_language(language, filepath) is expected


def test_every_language_is_complete() -> None:
    for language in LANGUAGES.values():
        for sentence in (language.doc_convention, language.test_framework, language.idioms):
            assert sentence.endswith("."), language.id
        assert all(extension.startswith(".") for extension in language.extensions)
        assert resolve_language(language.fence) is language


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Explain this:\n```python\nx = 1\n```",
            Extracted("x = 1", "python", None, "Explain this:"),
        ),
        (
            "Compare\n```go\na()\n```\nwith this one:\n```go\nb()\n```\nplease.",
            Extracted("b()", "go", None, "Compare\n```go\na()\n```\nwith this one:\nplease."),
        ),
        (
            "```python src/app.py\nimport os\n```",
            Extracted("import os", "python", "src/app.py", ""),
        ),
        (
            "```java src/My App/Main.java\nclass Main {}\n```",
            Extracted("class Main {}", "java", "src/My App/Main.java", ""),
        ),
        ("```src/app.py\nx\n```", Extracted("x", None, "src/app.py", "")),
        ("```python linenums\nx\n```", Extracted("x", "python", None, "")),
        ('```python title="a.py"\nx\n```', Extracted("x", "python", None, "")),
        ("```{.python}\nx\n```", Extracted("x", None, None, "")),
        ("What is wrong?\n```\nx = [\n```", Extracted("x = [", None, None, "What is wrong?")),
        ("def f():\n    return 1\n", Extracted("def f():\n    return 1\n", None, None, "")),
        (
            "Fix:\n```js\nlet a = 1;\nlet b;\n",
            Extracted("let a = 1;\nlet b;\n", "js", None, "Fix:"),
        ),
        ("~~~go\nfunc f() {}\n~~~\nWhy?", Extracted("func f() {}", "go", None, "Why?")),
        (
            "Docs:\r\n```cs\r\nclass A {}\r\n```\r\n",
            Extracted("class A {}", "cs", None, "Docs:"),
        ),
        # A longer fence holds a shorter one; ``` inside ~~~ does not close it.
        (
            "````markdown\n```python\nx\n```\n````",
            Extracted("```python\nx\n```", "markdown", None, ""),
        ),
        ("~~~\n```\n~~~", Extracted("```", None, None, "")),
        # Inline code and indented code are no fences.
        ("```x``` is inline code", Extracted("```x``` is inline code", None, None, "")),
        (
            "    ```python\n    x\n    ```",
            Extracted("    ```python\n    x\n    ```", None, None, ""),
        ),
        ("```python\n```", Extracted("", "python", None, "")),
        ("Fix\n```python", Extracted("", "python", None, "Fix")),
        ("See a```b:\n  ```py\n  x\n   ```", Extracted("  x", "py", None, "See a```b:")),
    ],
)
def test_code_from_message(text: str, expected: Extracted) -> None:
    assert code_from_message(text) == expected


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("qwen2.5-coder-7b:explain", ("qwen2.5-coder-7b", "explain")),
        ("llama3:8b", None),
        ("llama3:8b:fix", ("llama3:8b", "fix")),
        ("m:docs", ("m", "docs")),
        ("m:tests", ("m", "tests")),
        ("m:unknown", None),
        ("m:Docs", None),
        (":docs", None),
        ("docs", None),
        ("m:docs:", None),
        ("", None),
    ],
)
def test_action_and_model(model: str, expected: tuple[str, str] | None) -> None:
    assert action_and_model(model) == expected


@pytest.mark.parametrize("action", ACTIONS)
def test_action_model_name_round_trips(action: str) -> None:
    name = action_model_name("llama3:8b", action)

    assert name == f"llama3:8b:{action}"
    assert action_and_model(name) == ("llama3:8b", action)


def test_messages_for_chat_acts_on_the_last_user_message() -> None:
    earlier: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Explain:\n```go\nfunc A() {}\n```"},
        {"role": "assistant", "content": "`A` does nothing."},
    ]
    last = {
        "role": "user",
        "content": [
            {"type": "text", "text": "And this one, briefly:"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "text", "text": "```go cmd/b.go\nfunc B() { A() }\n```"},
        ],
    }

    messages = messages_for_chat("explain", [*earlier, last])

    expected = build_messages(
        "explain",
        code="func B() { A() }",
        language="go",
        filepath="cmd/b.go",
        instructions="And this one, briefly:",
    )
    assert messages == [expected[0], earlier[1], earlier[2], expected[1]]
    assert "Go developer" in messages[0]["content"]
    assert messages[-1]["content"].startswith("File: cmd/b.go\n\nExplain this code:\n\n```go\n")
    assert messages[1] is not earlier[1]  # copies: the request's own list is left alone
    assert earlier[0]["content"] == "You are a helpful assistant."


def test_messages_for_chat_takes_the_language_from_the_file_name_and_drops_a_prefill() -> None:
    messages = messages_for_chat(
        "fix",
        [
            {"role": "developer", "content": "Be terse."},
            {"role": "user", "content": "```src/util.py\ndef f(x=[]): pass\n```"},
            {"role": "assistant", "content": "```python\n"},
        ],
    )

    assert [message["role"] for message in messages] == ["system", "user"]
    assert "Python developer" in messages[0]["content"]
    assert "File: src/util.py\n\n" in messages[1]["content"]
    assert "```python\ndef f(x=[]): pass\n```" in messages[1]["content"]


def test_messages_for_chat_without_a_fence_acts_on_the_whole_text() -> None:
    messages = messages_for_chat("tests", [{"role": "user", "content": "int add(int a, int b);"}])

    assert (
        messages[1]["content"]
        == "Write unit tests for this code:\n\n```\nint add(int a, int b);\n```"
    )


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([], "no user message"),
        ([{"role": "system", "content": "x"}], "no user message"),
        ([{"role": "user", "content": "  \n"}], "no text"),
        ([{"role": "user", "content": None}], "no text"),
        ([{"role": "user"}], "no text"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}], "no text"),
        ([{"role": "user", "content": "Explain\n```python\n\n```"}], "no code"),
    ],
)
def test_messages_for_chat_refuses_a_request_without_code(
    messages: list[dict[str, Any]], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        messages_for_chat("explain", messages)
