"""Prompt building: real files' code in, the exact prompt each model family expects out."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from gateway.fim.languages import CSHARP, GO, JAVA, JAVASCRIPT, PYTHON, TYPESCRIPT, language_for
from gateway.fim.profiles import Budget, FimProfile, load_shipped
from gateway.fim.prompt import Segments, Snippet, build_prompt, is_single_line, keep_head, keep_tail

pytestmark = pytest.mark.smoke

SHIPPED = load_shipped()
QWEN, DEEPSEEK, CODELLAMA = SHIPPED["qwen"], SHIPPED["deepseek"], SHIPPED["codellama"]
STARCODER, CODESTRAL, GENERIC = SHIPPED["starcoder2"], SHIPPED["codestral"], SHIPPED["generic"]

DJANGO_PREFIX = """\
from django.http import JsonResponse
from django.shortcuts import get_object_or_404

from .models import Invoice


def invoice_detail(request, pk):
    invoice = get_object_or_404(Invoice, pk=pk)
    """
DJANGO_SUFFIX = """

def invoice_list(request):
    return JsonResponse({"invoices": list(Invoice.objects.values())})
"""

CSHARP_PREFIX = """\
using System.Linq;

namespace Shop.Orders
{
    public class OrderTotals
    {
        public decimal Total(IEnumerable<OrderLine> lines)
        {
            return lines."""
CSHARP_SUFFIX = """;
        }
    }
}
"""

JAVA_PREFIX = """\
package com.example.users;

import java.util.List;
import java.util.stream.Collectors;

public class UserNames {
    public static List<String> activeNames(List<User> users) {
        """
JAVA_SUFFIX = """
    }
}
"""

GO_PREFIX = """\
package config

import (
\t"encoding/json"
\t"os"
)

func Load(path string) (*Config, error) {
\tdata, err := os.ReadFile(path)
\t"""
GO_SUFFIX = """
\tvar cfg Config
\treturn &cfg, json.Unmarshal(data, &cfg)
}
"""

JS_PREFIX = """\
export async function fetchUser(id) {
  const response = await fetch(`/api/users/${id}`);
  if (!response.ok) {
    """
JS_SUFFIX = """
  }
  return response.json();
}
"""

TS_PREFIX = """\
export interface Invoice {
  id: string;
  """
TS_SUFFIX = """
}
"""

CASES = [
    pytest.param(
        QWEN,
        PYTHON,
        DJANGO_PREFIX,
        DJANGO_SUFFIX,
        f"<|fim_prefix|>{DJANGO_PREFIX}<|fim_suffix|>{DJANGO_SUFFIX}<|fim_middle|>",
        id="qwen-python-django-view",
    ),
    pytest.param(
        DEEPSEEK,
        CSHARP,
        CSHARP_PREFIX,
        CSHARP_SUFFIX,
        f"<｜fim▁begin｜>{CSHARP_PREFIX}<｜fim▁hole｜>{CSHARP_SUFFIX}<｜fim▁end｜>",  # noqa: RUF001 - DeepSeek's tokens use U+FF5C
        id="deepseek-csharp-linq",
    ),
    pytest.param(
        CODELLAMA,
        JAVA,
        JAVA_PREFIX,
        JAVA_SUFFIX,
        f"<PRE> {JAVA_PREFIX} <SUF>{JAVA_SUFFIX} <MID>",
        id="codellama-java-stream",
    ),
    pytest.param(
        STARCODER,
        GO,
        GO_PREFIX,
        GO_SUFFIX,
        f"<fim_prefix>{GO_PREFIX}<fim_suffix>{GO_SUFFIX}<fim_middle>",
        id="starcoder2-go-error-check",
    ),
    pytest.param(
        CODESTRAL,
        JAVASCRIPT,
        JS_PREFIX,
        JS_SUFFIX,
        f"[SUFFIX]{JS_SUFFIX}[PREFIX]{JS_PREFIX}",
        id="codestral-javascript-fetch",
    ),
    pytest.param(
        QWEN,
        TYPESCRIPT,
        TS_PREFIX,
        TS_SUFFIX,
        f"<|fim_prefix|>{TS_PREFIX}<|fim_suffix|>{TS_SUFFIX}<|fim_middle|>",
        id="qwen-typescript-interface",
    ),
    pytest.param(
        GENERIC,
        PYTHON,
        DJANGO_PREFIX,
        DJANGO_SUFFIX,
        DJANGO_PREFIX,
        id="generic-continues-the-prefix-only",
    ),
]


@pytest.mark.parametrize(("profile", "language", "prefix", "suffix", "expected"), CASES)
def test_each_family_gets_its_own_layout(
    profile: FimProfile, language: object, prefix: str, suffix: str, expected: str
) -> None:
    segments = Segments(prefix=prefix, suffix=suffix)
    built = build_prompt(segments, profile=profile, language=language)  # type: ignore[arg-type]
    assert built.prompt == expected


def test_context_snippets_go_before_the_prefix_as_comments_of_the_files_language() -> None:
    segments = Segments(
        prefix=JAVA_PREFIX,
        suffix=JAVA_SUFFIX,
        snippets=[
            Snippet(
                "src/main/java/com/example/users/User.java",
                "public record User(String name, boolean active) {}",
                "declaration",
            ),
            Snippet("src/main/java/com/example/Util.java", "final class Util {\n}", "recent_file"),
        ],
    )
    built = build_prompt(segments, profile=QWEN, language=JAVA)
    context = (
        "// Path: src/main/java/com/example/Util.java\n"
        "// final class Util {\n"
        "// }\n"
        "//\n"
        "// Path: src/main/java/com/example/users/User.java\n"
        "// public record User(String name, boolean active) {}\n"
        "//\n"
    )
    assert built.prompt == (
        f"<|fim_prefix|>{context}{JAVA_PREFIX}<|fim_suffix|>{JAVA_SUFFIX}<|fim_middle|>"
    )
    assert [s.kind for s in built.snippets] == ["recent_file", "declaration"]


def test_python_snippets_use_hash_comments_and_the_clipboard_has_its_own_header() -> None:
    segments = Segments(
        prefix=DJANGO_PREFIX,
        snippets=[
            Snippet("billing/models.py", "class Invoice(models.Model):\n    total = 0"),
            Snippet("", "Invoice.objects.filter(paid=False)", "clipboard"),
        ],
    )
    built = build_prompt(segments, profile=QWEN, language=PYTHON)
    assert built.prompt.startswith(
        "<|fim_prefix|># Clipboard:\n# Invoice.objects.filter(paid=False)\n#\n"
        "# Path: billing/models.py\n# class Invoice(models.Model):\n#     total = 0\n#\n"
        "from django.http"
    )


def test_snippets_already_in_the_file_or_repeated_are_left_out() -> None:
    helper = "def helper():\n    return 1"
    segments = Segments(
        prefix=helper + "\n\n\ndef main():\n    ",
        snippets=[
            Snippet("same.py", helper),
            Snippet("other.py", "X = 1"),
            Snippet("copy.py", "X = 1"),
            Snippet("blank.py", "  \n"),
        ],
    )
    built = build_prompt(segments, profile=QWEN, language=PYTHON)
    assert [s.filepath for s in built.snippets] == ["other.py"]


def test_the_context_budget_keeps_the_most_relevant_snippets_that_fit() -> None:
    profile = replace(QWEN, budget=Budget(context_chars=120))
    big = Snippet("big.py", "x = 1\n" * 40, "changed_file")
    small = Snippet("small.py", "def f(): pass", "recent_file")
    first = Snippet("decl.py", "class A: ...", "declaration")
    built = build_prompt(
        Segments(prefix="a = ", snippets=[first, big, small]), profile=profile, language=PYTHON
    )
    assert [s.filepath for s in built.snippets] == ["small.py", "decl.py"]
    assert len(built.prompt) < 120 + len("a = ") + 40


def test_no_context_when_the_client_turns_it_off() -> None:
    segments = Segments(prefix="x = ", snippets=[Snippet("a.py", "Y = 2")])
    built = build_prompt(segments, profile=QWEN, language=PYTHON, use_context=False)
    assert built.prompt == "<|fim_prefix|>x = <|fim_suffix|><|fim_middle|>"


def test_a_huge_prefix_keeps_the_lines_nearest_the_cursor() -> None:
    lines = [f"value_{i} = compute({i})\n" for i in range(5000)]
    prefix = "".join(lines) + "result = "
    built = build_prompt(Segments(prefix=prefix, suffix=""), profile=QWEN, language=PYTHON)
    assert built.prefix.endswith("value_4999 = compute(4999)\nresult = ")
    assert built.prefix.startswith("value_")  # starts at a whole line
    assert len(built.prefix) <= QWEN.budget.prefix_chars


def test_a_huge_suffix_keeps_the_lines_after_the_cursor() -> None:
    suffix = "\n" + "".join(f"print({i})\n" for i in range(3000))
    built = build_prompt(Segments(prefix="x = ", suffix=suffix), profile=QWEN, language=PYTHON)
    assert built.suffix.startswith("\nprint(0)\nprint(1)\n")
    assert built.suffix.endswith(")\n") and len(built.suffix) <= QWEN.budget.suffix_chars


def test_crlf_files_are_normalised_and_remembered() -> None:
    built = build_prompt(
        Segments(prefix="int main()\r\n{\r\n    ", suffix="\r\n}\r\n"),
        profile=QWEN,
        language=language_for("c"),
    )
    assert "\r" not in built.prompt
    assert built.crlf and built.prefix == "int main()\n{\n    "


def test_one_enormous_minified_line_is_cut_inside_the_line() -> None:
    prefix = "var a=" + "1+" * 10000
    assert keep_tail(prefix, 100) == prefix[-100:]
    assert keep_head("abc\ndef\nghi", 9) == "abc\ndef\n"
    assert keep_head("abcdefghij", 4) == "abcd"


@pytest.mark.parametrize(
    ("suffix", "single"),
    [
        ("", False),
        ("\n    return x\n", False),
        (")\n", False),  # only closing brackets after the cursor: a block is welcome
        ("');\n", False),
        (" = 1\n", True),  # naming the variable of an assignment already written
        ("name, age)\n", True),  # mid-line: complete the line only
        ("result\nnext()", True),
    ],
)
def test_single_line_mode_when_words_follow_the_cursor(suffix: str, single: bool) -> None:
    assert is_single_line(suffix) is single


def test_languages_are_known_by_tabby_ids_aliases_and_extensions() -> None:
    assert language_for("typescriptreact") is TYPESCRIPT
    assert language_for("C#") is CSHARP
    assert language_for("unknown", "cmd/main.go") is GO
    assert language_for(None, "src\\App.java") is JAVA
    assert language_for("brainfuck", "x.bf").id == "generic"
    assert "\ndef " in PYTHON.stop_words and "\nfunc " in GO.stop_words
    assert "\npublic " in JAVA.stop_words and "\npublic " in CSHARP.stop_words
    assert "\nfunction " in JAVASCRIPT.stop_words and "\ninterface " in TYPESCRIPT.stop_words


def test_a_short_context_window_shrinks_every_part_of_the_prompt() -> None:
    prefix = "".join(f"total += item_{i}\n" for i in range(2000))
    suffix = "".join(f"print({i})\n" for i in range(2000))
    snippet = Snippet("util.py", "def helper():\n    return 42")
    segments = Segments(prefix=prefix, suffix=suffix, snippets=[snippet])
    wide = build_prompt(segments, profile=QWEN, language=PYTHON, context_tokens=32768)
    assert len(wide.prefix) > 5000 and len(wide.suffix) > 1500
    narrow = build_prompt(segments, profile=QWEN, language=PYTHON, context_tokens=512)
    # (512 - 64 generated - 16 spare) tokens x 3 characters, shared in proportion.
    assert len(narrow.prompt) <= (512 - 64 - 16) * 3 + len(
        "<|fim_prefix|><|fim_suffix|><|fim_middle|>"
    )
    assert narrow.prefix.endswith("total += item_1999\n") and narrow.suffix.startswith("print(0)\n")
    assert narrow.snippets == [snippet]


@pytest.mark.parametrize("language", [PYTHON, JAVA, language_for("html"), language_for("sql")])
def test_a_block_of_comment_lines_is_each_line_commented(language: object) -> None:
    lang: Any = language
    for text in ("", "one", "one\ntwo", "a\n\n\nb", "trailing\n", "\n\nlead", "  indented\n\tx"):
        assert lang.comment_lines(text) == "\n".join(
            lang.comment(line) for line in text.split("\n")
        )
