"""What a FIM completion looks like once the model's raw text has been cleaned up.

The cases are real code in each language, with the cursor where an editor would have it
(`█`), and what small code models really send back there: the closing brace already in
the file typed again, the next definition started, one line repeated until the token
limit, special tokens leaked, blank lines and whitespace left at the end.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import pytest

from gateway.fim.languages import (
    CSHARP,
    GENERIC,
    GO,
    JAVA,
    JAVASCRIPT,
    PYTHON,
    TYPESCRIPT,
    Language,
    language_for,
)
from gateway.fim.postprocess import postprocess

pytestmark = pytest.mark.smoke

CURSOR = "█"
# The end and FIM tokens of the Qwen2.5-Coder / StarCoder2 families, as the caller passes.
STOP = ("<|endoftext|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_sep|>")


def source(text: str) -> str:
    """A file written indented in this test, as it is on disk."""
    return textwrap.dedent(text).removeprefix("\n")


def go(text: str) -> str:
    """Go as gofmt writes it: written here with four spaces, indented with tabs."""
    lines = textwrap.dedent(text).removeprefix("\n").split("\n")
    return "\n".join(
        "\t" * ((len(line) - len(line.lstrip(" "))) // 4) + line.lstrip(" ") for line in lines
    )


@dataclass(frozen=True)
class Case:
    language: Language
    file: str  # the whole file, CURSOR where the completion goes
    model: str  # what the model generated
    expected: str  # what the user is shown
    single_line: bool = False


def complete(case: Case) -> str:
    prefix, suffix = case.file.split(CURSOR)
    return postprocess(
        case.model,
        prefix=prefix,
        suffix=suffix,
        language=case.language,
        single_line=case.single_line,
        stop=STOP,
    )


PYTHON_CASES = [
    pytest.param(
        Case(
            PYTHON,
            source("""
                from django.http import JsonResponse
                from django.shortcuts import get_object_or_404

                from .models import Article


                def article_detail(request, pk):
                    █


                def article_list(request):
                    articles = Article.objects.filter(published=True)
                    return JsonResponse({"titles": [a.title for a in articles]})
                """),
            "article = get_object_or_404(Article, pk=pk)\n"
            '    return JsonResponse({"title": article.title, "body": article.body})\n'
            "\n"
            "\n"
            "def article_list(request):\n"
            "    articles = Article.objects.all()\n",
            "article = get_object_or_404(Article, pk=pk)\n"
            '    return JsonResponse({"title": article.title, "body": article.body})',
        ),
        id="python-django-view-body-stops-at-blank-line-before-next-def",
    ),
    pytest.param(
        Case(
            PYTHON,
            source("""
                class Order(models.Model):
                    created = models.DateTimeField(auto_now_add=True)
                    total = models.DecimalField(max_digits=10, decimal_places=2)

                    def is_recent(self):
                        █
                """),
            "return self.created >= timezone.now() - timedelta(days=7)\n"
            "    def is_large(self):\n"
            "        return self.total > 1000\n",
            "return self.created >= timezone.now() - timedelta(days=7)",
        ),
        id="python-method-body-stops-at-next-method-without-blank-line",
    ),
    pytest.param(
        Case(
            PYTHON,
            source("""
                import re


                def slugify_title(title: str) -> str:█


                def test_slugify():
                    assert slugify_title("Hello, World") == "hello-world"
                """),
            '\n    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")\n'
            "\n"
            "\n"
            "def test_slugify():\n",
            '\n    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")',
        ),
        id="python-cursor-at-end-of-def-line-keeps-leading-newline",
    ),
    pytest.param(
        Case(
            PYTHON,
            source("""
                from django.urls import path

                from . import views

                urlpatterns = [
                    path("", views.index, name="index"),
                    █
                ]
                """),
            'path("articles/", views.article_list, name="article-list"),\n'
            '    path("articles/", views.article_list, name="article-list"),\n'
            '    path("articles/", views.article_list, name="article-list"),\n'
            '    path("articles/", views.article_list, name="article-list"),\n'
            '    path("articles/", views.arti',
            'path("articles/", views.article_list, name="article-list"),',
        ),
        id="python-urlpatterns-line-looped-until-token-limit",
    ),
    pytest.param(
        Case(
            PYTHON,
            source("""
                def import_rows(path):
                    count = load_csv(path)
                    logger.info("Imported %d rows from %s", █)
                    return count
                """),
            "count, path)\n    return count\n",
            "count, path",
            single_line=True,
        ),
        id="python-single-line-call-args-before-closing-paren",
    ),
    pytest.param(
        Case(
            PYTHON,
            source("""
                def print_report(rows):
                    for row in rows:
                        print(█)
                """),
            "format_row(row)",
            "format_row(row)",
            single_line=True,
        ),
        id="python-single-line-own-parens-are-not-the-suffix",
    ),
    pytest.param(
        Case(
            PYTHON,
            source("""
                def total_price(items):
                    total = sum(item.price * item.quantity for item in items)
                    █
                    return total
                """),
            'if total > 1000:\n        total *= Decimal("0.95")\n    return total\n',
            'if total > 1000:\n        total *= Decimal("0.95")',
        ),
        id="python-drops-return-line-already-in-suffix",
    ),
    pytest.param(
        Case(
            PYTHON,
            source("""
                def read_rows(reader):
                    rows = []
                    for row in reader:
                        rows.append(row)
                        █
                """),
            "rows.append(row)\n",
            "",
        ),
        id="python-repeat-of-line-above-is-nothing",
    ),
    pytest.param(
        Case(
            PYTHON,
            source("""
                def total(items):
                    result = 0
                    for item in items:
                        █
                """),
            "result += item.price\n    return result\n\n\ndef main():\n",
            "result += item.price",
        ),
        id="python-dedent-out-of-loop-body-ends-completion",
    ),
    pytest.param(
        Case(
            PYTHON,
            source("""
                class Customer:
                    def to_dict(self):
                        return {█}
                """),
            '\n            "id": self.id,\n            "name": self.name,\n        }',
            '\n            "id": self.id,\n            "name": self.name,\n        ',
        ),
        id="python-dict-literal-brace-auto-closed-by-editor",
    ),
    pytest.param(
        Case(
            PYTHON,
            source("""
                from django.views.decorators.http import require_POST


                █def delete_article(request, pk):
                    Article.objects.filter(pk=pk).delete()
                """),
            "@login_required\n@require_POST\n",
            # `@` at the start of a line is a Python stop word: one decorator is shown.
            "@login_required\n",
        ),
        id="python-decorator-before-def-keeps-its-line-break",
    ),
    pytest.param(
        Case(
            PYTHON,
            source("""
                def handle(self, *args, **options):
                    █
                """),
            "\n\n    <|endoftext|>",
            "",
        ),
        id="python-only-whitespace-then-end-token",
    ),
]

CSHARP_CASES = [
    pytest.param(
        Case(
            CSHARP,
            source("""
                public class OrderService
                {
                    private readonly AppDbContext _db;

                    public async Task<List<OrderDto>> GetRecentOrdersAsync(int customerId)
                    {
                        █
                    }
                }
                """),
            "return await _db.Orders\n"
            "            .Where(o => o.CustomerId == customerId)\n"
            "            .OrderByDescending(o => o.CreatedAt)\n"
            "            .Select(o => new OrderDto(o.Id, o.Total))\n"
            "            .ToListAsync();\n"
            "    }\n"
            "}",
            "return await _db.Orders\n"
            "            .Where(o => o.CustomerId == customerId)\n"
            "            .OrderByDescending(o => o.CreatedAt)\n"
            "            .Select(o => new OrderDto(o.Id, o.Total))\n"
            "            .ToListAsync();",
        ),
        id="csharp-linq-query-without-reemitted-closing-braces",
    ),
    pytest.param(
        Case(
            CSHARP,
            source("""
                public static class EmailValidator
                {
                    public static bool IsValid(string email)█
                }
                """),
            "\n    {\n"
            '        return Regex.IsMatch(email, @"^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$");\n'
            "    }\n"
            "\n"
            "    public static string Normalize(string email)\n",
            "\n    {\n"
            '        return Regex.IsMatch(email, @"^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$");\n'
            "    }",
        ),
        id="csharp-allman-method-body-after-signature",
    ),
    pytest.param(
        Case(
            CSHARP,
            source("""
                public IReadOnlyList<string> ActiveNames(IEnumerable<Customer> customers)
                {
                    var names = customers.Where(c => c.IsActive).Select(█);
                    return names.ToList();
                }
                """),
            "c => c.Name);",
            "c => c.Name",
            single_line=True,
        ),
        id="csharp-single-line-lambda-before-paren-and-semicolon",
    ),
    pytest.param(
        Case(
            CSHARP,
            source("""
                public static void Main(string[] args)
                {
                    var count = new OrderImporter().Run(args[0]);
                    █
                }
                """),
            'Console.WriteLine($"Processed {count} orders");<|endoftext|>// Program.cs\nusing',
            'Console.WriteLine($"Processed {count} orders");',
        ),
        id="csharp-end-token-then-next-file",
    ),
    pytest.param(
        Case(
            CSHARP,
            source("""
                public class DiscountCalculator
                {
                    public decimal CalculateDiscount(Customer customer)
                    {
                        if (customer.IsPremium)
                        {
                            █
                        }
                        return 0m;
                    }
                }
                """),
            "return customer.TotalSpent * 0.1m;\n"
            "        }\n"
            "        return 0m;\n"
            "    }\n"
            "    private decimal Round(decimal value) => Math.Round(value, 2);\n",
            "return customer.TotalSpent * 0.1m;",
        ),
        id="csharp-runs-past-if-block-into-rest-of-method",
    ),
    pytest.param(
        Case(
            CSHARP,
            source("""
                public class ProductConfiguration : IEntityTypeConfiguration<Product>
                {
                    public void Configure(EntityTypeBuilder<Product> builder)
                    {
                        builder.HasKey(p => p.Id);
                        █
                    }
                }
                """),
            "builder.Property(p => p.Name)\n"
            "            .HasMaxLength(200);\n"
            "        builder.Property(p => p.Name)\n"
            "            .HasMaxLength(200);\n"
            "        builder.Property(p => p.Name)\n"
            "            .HasMaxLength(200);\n"
            "        builder.Property(p => p.Na",
            "builder.Property(p => p.Name)\n            .HasMaxLength(200);",
        ),
        id="csharp-two-line-block-looped",
    ),
    pytest.param(
        Case(
            CSHARP,
            source("""
                public class Cart
                {
                    public int Count()
                    {
                        return _items.Count;█
                    }
                }
                """),
            "\n    }\n}",
            "",
        ),
        id="csharp-completion-is-only-the-closing-braces-of-suffix",
    ),
]

JAVA_CASES = [
    pytest.param(
        Case(
            JAVA,
            source("""
                public class UserQueries {
                    public List<String> activeUserEmails(List<User> users) {
                        return users.stream()
                                .filter(User::isActive)
                                █
                    }
                }
                """),
            ".map(User::getEmail)\n"
            "                .collect(Collectors.toList());\n"
            "    }\n"
            "\n"
            "    public long countActive(List<User> users) {\n",
            ".map(User::getEmail)\n                .collect(Collectors.toList());",
        ),
        id="java-stream-chain-stops-before-method-end",
    ),
    pytest.param(
        Case(
            JAVA,
            source("""
                public class ConfigReader {
                    public String readConfig(Path path) {
                        try {█
                        } catch (IOException e) {
                            throw new UncheckedIOException(e);
                        }
                    }
                }
                """),
            "\n            return Files.readString(path);\n"
            "        } catch (IOException e) {\n"
            "            throw new UncheckedIOException(e);\n"
            "        }\n"
            "    }",
            "\n            return Files.readString(path);",
        ),
        id="java-try-body-without-reemitted-catch",
    ),
    pytest.param(
        Case(
            JAVA,
            source("""
                public String displayName(User user) {
                    String name = user.getName() != null ? █ : "anonymous";
                    return name.trim();
                }
                """),
            'user.getName() : "anonymous";',
            "user.getName()",
            single_line=True,
        ),
        id="java-single-line-ternary-reemits-rest-of-line",
    ),
    pytest.param(
        Case(
            JAVA,
            source("""
                package com.example.orders;

                import java.math.BigDecimal;

                public record OrderLine(String sku, int quantity, BigDecimal unitPrice) {
                    public BigDecimal total() {
                        █
                    }
                }
                """),
            "return unitPrice.multiply(BigDecimal.valueOf(quantity));\n"
            "    }\n"
            "}\n"
            "public record Order(List<OrderLine> lines) {\n",
            "return unitPrice.multiply(BigDecimal.valueOf(quantity));",
        ),
        id="java-record-method-runs-into-next-public-type",
    ),
    pytest.param(
        Case(
            JAVA,
            source("""
                @Service
                public class OrderService {
                    private static final Logger log = LoggerFactory.getLogger(OrderService.class);

                    public Order save(Order order) {
                        Order saved = repository.save(order);
                        █
                        return saved;
                    }
                }
                """),
            'log.info("Saved order {}", saved.getId());\n\n\n<|endoftext|>',
            'log.info("Saved order {}", saved.getId());',
        ),
        id="java-trailing-blank-lines-and-end-token",
    ),
    pytest.param(
        Case(
            JAVA,
            source("""
                package com.example;

                import java.util.List;
                █
                """),
            "import java.util.Map;\n" * 4,
            "import java.util.Map;",
        ),
        id="java-import-line-looped",
    ),
    pytest.param(
        Case(
            JAVA,
            source("""
                public class Checkout {
                    void complete(Order order) {
                        if (order.isPaid()) {
                            █
                        }
                    }
                }
                """),
            "shipmentService.schedule(order);\n"
            "        } else {\n"
            "            notifier.remindPayment(order);\n"
            "        }",
            "shipmentService.schedule(order);",
        ),
        id="java-if-body-stops-before-else-branch",
    ),
]

GO_CASES = [
    pytest.param(
        Case(
            GO,
            go("""
                func LoadConfig(path string) (*Config, error) {
                    f, err := os.Open(path)
                    if err != nil {█
                }
                """),
            '\n\t\treturn nil, fmt.Errorf("open %s: %w", path, err)\n\t}\n\tdefer f.Close()\n',
            '\n\t\treturn nil, fmt.Errorf("open %s: %w", path, err)\n\t}',
        ),
        id="go-err-check-opened-at-cursor-keeps-its-closing-brace",
    ),
    pytest.param(
        Case(
            GO,
            go("""
                func LoadConfig(path string) (*Config, error) {
                    f, err := os.Open(path)
                    if err != nil {
                        █
                    }
                    defer f.Close()
                }
                """),
            "return nil, err\n\t}\n\tdefer f.Close()\n\n\tvar cfg Config\n",
            "return nil, err",
        ),
        id="go-err-check-brace-already-in-suffix",
    ),
    pytest.param(
        Case(
            GO,
            go("""
                func (s *Server) Start(addr string) error {
                    █
                }
                """),
            "s.httpServer = &http.Server{Addr: addr, Handler: s.router}\n"
            "\treturn s.httpServer.ListenAndServe()\n"
            "}\n"
            "func (s *Server) Stop(ctx context.Context) error {\n"
            "\treturn s.httpServer.Shutdown(ctx)\n"
            "}\n",
            "s.httpServer = &http.Server{Addr: addr, Handler: s.router}\n"
            "\treturn s.httpServer.ListenAndServe()",
        ),
        id="go-method-body-runs-into-next-func",
    ),
    pytest.param(
        Case(
            GO,
            go("""
                func statusText(code int) string {
                    switch code {█
                    }
                    return "unknown"
                }
                """),
            '\n\tcase 200:\n\t\treturn "OK"\n\tcase 404:\n\t\treturn "Not Found"\n'
            '\t}\n\treturn "unknown"\n}',
            '\n\tcase 200:\n\t\treturn "OK"\n\tcase 404:\n\t\treturn "Not Found"',
        ),
        id="go-switch-cases-at-switch-indentation",
    ),
    pytest.param(
        Case(
            GO,
            go("""
                func newUser(req CreateUserRequest) User {
                    user := User{
                        Name: req.Name,
                        █
                    }
                    return user
                }
                """),
            "Email: req.Email,\n" + "\t\tEmail: req.Email,\n" * 3,
            "Email: req.Email,",
        ),
        id="go-struct-literal-field-looped",
    ),
    pytest.param(
        Case(
            GO,
            go("""
                func main() {
                    addr := os.Getenv("ADDR")
                    log.Printf("listening on %s", █)
                }
                """),
            "addr)\n\tlog.Fatal(http.ListenAndServe(addr, nil))",
            "addr",
            single_line=True,
        ),
        id="go-single-line-argument-before-closing-paren",
    ),
    pytest.param(
        Case(
            GO,
            go("""
                func (r *Repo) Find(id int64) (*Item, error) {
                    █
                }
                """),
            "<|fim_middle|>return r.items[id], nil",
            "",
        ),
        id="go-model-starts-with-fim-token",
    ),
    pytest.param(
        Case(
            GO,
            go("""
                func parse(data []byte) (*Config, error) {
                    var cfg Config
                    if err := json.Unmarshal(data, &cfg); err != nil {
                        return nil, err
                    }
                    █
                }
                """),
            "return &cfg, nil\n\t\n\t\n",
            "return &cfg, nil",
        ),
        id="go-trailing-whitespace-lines",
    ),
]

JS_TS_CASES = [
    pytest.param(
        Case(
            JAVASCRIPT,
            source("""
                export function loadUsers() {
                  return fetch("/api/users")
                    █
                }
                """),
            ".then((response) => response.json())\n"
            "    .then((data) => data.users);\n"
            "}\n"
            "\n"
            "export function loadPosts() {\n",
            ".then((response) => response.json())\n    .then((data) => data.users);",
        ),
        id="js-fetch-promise-chain",
    ),
    pytest.param(
        Case(
            JAVASCRIPT,
            source("""
                const express = require("express");

                const app = express();

                app.get("/health", (req, res) => {█

                app.listen(3000);
                """),
            '\n  res.json({ status: "ok" });\n});\n\napp.listen(3000);',
            '\n  res.json({ status: "ok" });\n});',
        ),
        id="js-express-handler-keeps-closing-of-callback-opened-at-cursor",
    ),
    pytest.param(
        Case(
            JAVASCRIPT,
            source("""
                module.exports = {
                  testEnvironment: "node",
                  moduleFileExtensions: [█
                };
                """),
            '\n    "js",\n    "json",\n  ],\n  testMatch: ["**/*.test.js"],\n};',
            '\n    "js",\n    "json",\n  ],',
        ),
        id="js-config-array-opened-at-cursor",
    ),
    pytest.param(
        Case(
            JAVASCRIPT,
            source("""
                async function show(req, res) {
                  const user = await db.users.findOne({ where: { id: █ } });
                  res.json(user);
                }
                """),
            "req.params.id } });",
            "req.params.id",
            single_line=True,
        ),
        id="js-single-line-inside-object-literal-braces",
    ),
    pytest.param(
        Case(
            JAVASCRIPT,
            source("""
                export function formatPrice(cents) {
                  █
                }
                """),
            "return `$${(cents / 100).toFixed(2)}`;\n"
            "}\n"
            "export function formatDate(date) {\n"
            "  return date.toISOString();\n"
            "}\n",
            "return `$${(cents / 100).toFixed(2)}`;",
        ),
        id="js-function-body-runs-into-next-export",
    ),
    pytest.param(
        Case(
            TYPESCRIPT,
            source("""
                export interface User {
                  id: number;
                  name: string;
                  █
                }
                """),
            "email: string;\n  createdAt: Date;\n}\n\nexport interface Post {\n  id: number;\n",
            "email: string;\n  createdAt: Date;",
        ),
        id="ts-interface-fields",
    ),
    pytest.param(
        Case(
            TYPESCRIPT,
            source("""
                function walk(node: TreeNode, visit: (node: TreeNode) => void): void {
                  visit(node);
                  if (node.children) {
                    for (const child of node.children) {
                      █
                    }
                  }
                }
                """),
            "walk(child, visit);\n    }\n  }\n}\n",
            "walk(child, visit);",
        ),
        id="ts-nested-loop-body-without-reemitted-braces",
    ),
    pytest.param(
        Case(
            TYPESCRIPT,
            source("""
                export function TodoList() {
                  const [items, setItems] = useState<Item[]>(█);
                  return <ul>{items.map(renderItem)}</ul>;
                }
                """),
            "[]);",
            "[]",
            single_line=True,
        ),
        id="ts-single-line-usestate-initial-value",
    ),
]

OTHER_CASES = [
    pytest.param(
        Case(
            language_for("yaml", "docker-compose.yml"),
            source("""
                services:
                  web:
                    image: nginx:1.27
                    █
                """),
            'ports:\n      - "80:80"\n  db:\n    image: postgres:16\n',
            'ports:\n      - "80:80"',
        ),
        id="generic-yaml-stays-in-its-mapping",
    ),
    pytest.param(
        Case(PYTHON, "def f():\n    █\n", "", ""),
        id="empty-model-text",
    ),
    pytest.param(
        Case(JAVASCRIPT, "function f() {\n  █\n}\n", "<|fim_middle|><|endoftext|>", ""),
        id="only-special-tokens",
    ),
    pytest.param(
        Case(JAVA, "class A {\n    █\n}\n", "\n\n\n", ""),
        id="only-blank-lines",
    ),
    pytest.param(
        Case(
            PYTHON,
            "def area(r):\n    return █\n",
            "math.pi * r ** 2\n\ndef perimeter(r):\n    return 2 * math.pi * r\n",
            "math.pi * r ** 2",
            single_line=True,
        ),
        id="single-line-mode-with-multi-line-answer",
    ),
    pytest.param(
        Case(PYTHON, "def f(items):\n    return sum(█\n", "items)<|endof", "items)"),
        id="end-token-cut-by-token-limit",
    ),
]


@pytest.mark.parametrize(
    "case", [*PYTHON_CASES, *CSHARP_CASES, *JAVA_CASES, *GO_CASES, *JS_TS_CASES, *OTHER_CASES]
)
def test_completion(case: Case) -> None:
    assert complete(case) == case.expected


def test_every_language_has_its_share_of_cases() -> None:
    for cases in (PYTHON_CASES, CSHARP_CASES, JAVA_CASES, GO_CASES, JS_TS_CASES):
        assert len(cases) >= 6


def test_unknown_language_is_generic() -> None:
    assert language_for("cobol", "PAYROLL.CBL") is GENERIC


def run(
    text: str,
    prefix: str = "",
    suffix: str = "",
    *,
    language: Language = GENERIC,
    single_line: bool = False,
) -> str:
    return postprocess(
        text, prefix=prefix, suffix=suffix, language=language, single_line=single_line, stop=STOP
    )


# Step 1: stop words.


def test_stop_word_before_the_code_begins_does_not_cut() -> None:
    # Cursor at the end of a line: the model goes on below, after a blank line.
    assert run("\n\n    return x", "def f(x):", "\n", language=PYTHON) == "\n\n    return x"


def test_top_level_keyword_after_the_code_cuts() -> None:
    text = "return x\ndef g():\n    pass"
    assert run(text, "def f(x):\n    ", "\n", language=PYTHON) == "return x"


def test_model_token_cuts_even_at_the_start() -> None:
    assert run("<|endoftext|>x = 1", "x = 0\n", "\n") == ""


def test_custom_stop_strings_are_honoured() -> None:
    text = "x = 1\n```\nSome explanation"
    assert postprocess(
        text, prefix="", suffix="", language=PYTHON, single_line=False, stop=["```"]
    ) == ("x = 1")


def test_single_line_cuts_at_first_line_break() -> None:
    assert run("a + b\n    c", "x = ", "\n", single_line=True) == "a + b"
    assert run("\n    return x", "def f(x):", "\n", single_line=True) == ""


# Step 2: what the suffix already has.


def test_bracket_overlap_needs_an_unmatched_bracket() -> None:
    assert run("compute())", "print(", ")\n") == "compute()"
    assert run("compute()", "print(", ")\n") == "compute()"
    assert run("x)", "print(f(", ")\n") == "x)"


def test_bracket_inside_string_does_not_count() -> None:
    assert run('")"', "print(", ")\n") == '")"'


def test_words_typed_again_before_the_rest_of_the_line() -> None:
    assert run("user.name", "print(", "name)\n") == "user."


def test_double_semicolon_is_dropped() -> None:
    assert run("return x;", "    ", ";\n", language=JAVA) == "return x"


def test_closing_line_of_own_block_is_not_the_suffix_one() -> None:
    # The `}` at the completion's own depth closes its `if`, not the method.
    text = "if (x) {\n            run();\n        }"
    prefix = "class A {\n    void f() {\n        "
    assert run(text, prefix, "\n    }\n}\n", language=JAVA) == text


def test_whole_completion_is_the_suffix() -> None:
    assert run("}", "function f() {\n  return 1;\n", "\n}\n", language=JAVASCRIPT) == ""


# Step 3: loops.


def test_closing_braces_in_a_row_are_not_a_loop() -> None:
    assert run("}\n}\n}\n}") == "}\n}\n}\n}"


def test_two_repeats_are_not_a_loop() -> None:
    assert run("x = 1\nx = 1\ny = 2") == "x = 1\nx = 1\ny = 2"


def test_line_repeated_three_times_is_a_loop() -> None:
    assert run("x = 1\nx = 1\nx = 1\ny = 2") == "x = 1"


def test_block_of_three_lines_repeated() -> None:
    block = "a = read()\nb = parse(a)\nwrite(b)\n"
    assert run(block * 3) == block.rstrip()


def test_very_long_loop_is_cut_to_one_line() -> None:
    assert run("retry(request)\n" * 50_000, "while True:\n    ", "\n") == "retry(request)"


def test_very_long_line_is_kept() -> None:
    text = "0, " * 30_000 + "0"
    assert run(text, "ZEROS = [", "]\n") == text


# Step 4: scope.


def test_blank_lines_inside_the_scope_are_kept() -> None:
    text = "a = 1\n    \n    b = 2"
    assert run(text, "def f():\n    ", "\n", language=PYTHON) == "a = 1\n\n    b = 2"


def test_python_dedent_ends_the_completion() -> None:
    text = "\n        return 1\n    return 2"
    assert run(text, "def f(x):\n    if x:", "\n", language=PYTHON) == "\n        return 1"


def test_closing_line_is_kept_once() -> None:
    text = "\n  a();\n}\n}"
    assert run(text, "function f() {", "\n", language=JAVASCRIPT) == "\n  a();\n}"


def test_closing_line_must_match_the_opening_bracket() -> None:
    text = "\n  a();\n)"
    assert run(text, "function f() {", "\n", language=JAVASCRIPT) == "\n  a();"


def test_tab_indentation() -> None:
    text = "\n\t\treturn err\n\t}\n\treturn nil"
    assert run(text, "func f() error {\n\tif err != nil {", "\n}\n", language=GO) == (
        "\n\t\treturn err\n\t}"
    )


# Step 5: whitespace.


def test_trailing_spaces_are_stripped_and_indentation_kept() -> None:
    assert run("    x = 1   \n    y = 2   \n\n", "def f():\n", "\n") == "    x = 1\n    y = 2"


def test_space_before_code_after_the_cursor_is_kept() -> None:
    assert run("price + ", "total = ", "tax\n", single_line=True) == "price + "


def test_line_break_before_code_after_the_cursor_is_kept_at_its_column() -> None:
    prefix = "def f(x):\n    "
    assert run("x += 1\n", prefix, "return x\n", language=PYTHON) == "x += 1\n    "


def test_blank_lines_between_the_opening_line_and_the_cursor() -> None:
    prefix = "def f():\n    \n\n    "
    assert run("x = 1\ny = 2", prefix, "\n", language=PYTHON) == "x = 1"


def test_loop_that_began_on_the_cursor_line() -> None:
    text = "\nb = g(a)\na = f(b)\nb = g(a)\na = f(b)\nb = g(a)"
    assert run(text, "a = f(b)", "\n") == "\nb = g(a)"
