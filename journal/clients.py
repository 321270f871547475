"""Which client sent a request: a readable name and version from the User-Agent.

The console filters and counts by client ("tabby-agent (IntelliJ IDEA)", "OpenAI Python",
"curl"), so the many spellings of one client must become one name.  A user agent is a
list of ``product/version`` tokens; each known product has a kind, and the most telling
kind wins: an IDE plugin or agent over the SDK it is built on, an SDK over its HTTP
library, and the HTTP library over the runtime.  An IDE named beside an agent or plugin
is appended in brackets.  Unknown agents keep their first product's own name.

What some clients send (tabby-agent builds it in ``tabbyApiClient.ts``):

* ``Node.js/v20.11.0 tabby-agent/1.7.0 Visual-Studio-Code/1.90.0 TabbyML.vscode-tabby/1.7.0``
* ``OpenAI/Python 1.54.0`` (the version after a space), ``OpenAI/JS 4.73.1``
* ``Python/3.11 aiohttp/3.9.5``, ``python-httpx/0.28.1``, ``Go-http-client/1.1``
"""

from __future__ import annotations

import re
from functools import lru_cache

NAME_MAX = 64
VERSION_MAX = 64

# A product token, and the version that the OpenAI SDKs put after a space.
_TOKEN = re.compile(r"([A-Za-z][\w.+-]*)(?:/([\w.+-]*))?(?: (\d[\w.+-]*))?")

PLUGIN, AGENT, SDK, HTTP, IDE, BROWSER, RUNTIME = range(7)

# lower-case product name: (display name, kind).  Order of kinds above = precedence.
# fmt: off
KNOWN: dict[str, tuple[str, int]] = {
    "kodify-jetbrains": ("Kodify JetBrains", PLUGIN),
    "kodify-vscode": ("Kodify VS Code", PLUGIN),
    "kodify-vim": ("Kodify Vim", PLUGIN),
    "kodify-cli": ("Kodify CLI", PLUGIN),
    "tabby-agent": ("tabby-agent", AGENT),
    "continue": ("Continue", AGENT),
    "jetbrains-ai": ("JetBrains AI", AGENT),
    "llm.nvim": ("llm.nvim", AGENT),
    "openai": ("OpenAI", SDK),  # + its language: "OpenAI Python"
    "asyncopenai": ("OpenAI", SDK),
    "langchain": ("LangChain", SDK),
    "litellm": ("LiteLLM", SDK),
    "curl": ("curl", HTTP),
    "wget": ("wget", HTTP),
    "python-httpx": ("python-httpx", HTTP),
    "python-requests": ("python-requests", HTTP),
    "aiohttp": ("aiohttp", HTTP),
    "python-urllib": ("Python urllib", HTTP),
    "go-http-client": ("Go-http-client", HTTP),
    "okhttp": ("okhttp", HTTP),
    "ktor-client": ("Ktor client", HTTP),
    "java-http-client": ("Java HttpClient", HTTP),
    "apache-httpclient": ("Apache HttpClient", HTTP),
    "node-fetch": ("node-fetch", HTTP),
    "undici": ("undici", HTTP),
    "axios": ("axios", HTTP),
    "postmanruntime": ("Postman", HTTP),
    "insomnia": ("Insomnia", HTTP),
    "visual-studio-code": ("VS Code", IDE),
    "vscode": ("VS Code", IDE),
    "code": ("VS Code", IDE),
    "tabbyml.vscode-tabby": ("VS Code", IDE),
    "cursor": ("Cursor", IDE),
    "windsurf": ("Windsurf", IDE),
    "zed": ("Zed", IDE),
    "neovim": ("Neovim", IDE),
    "nvim": ("Neovim", IDE),
    "vim": ("Vim", IDE),
    "emacs": ("Emacs", IDE),
    "eclipse": ("Eclipse", IDE),
    "intellij-idea": ("IntelliJ IDEA", IDE),
    "intellij": ("IntelliJ IDEA", IDE),
    "pycharm": ("PyCharm", IDE),
    "goland": ("GoLand", IDE),
    "webstorm": ("WebStorm", IDE),
    "clion": ("CLion", IDE),
    "rider": ("Rider", IDE),
    "phpstorm": ("PhpStorm", IDE),
    "rubymine": ("RubyMine", IDE),
    "datagrip": ("DataGrip", IDE),
    "rustrover": ("RustRover", IDE),
    "android-studio": ("Android Studio", IDE),
    "jetbrains": ("JetBrains IDE", IDE),
    "edg": ("Edge", BROWSER),
    "firefox": ("Firefox", BROWSER),
    "chrome": ("Chrome", BROWSER),
    "safari": ("Safari", BROWSER),
    "node.js": ("Node.js", RUNTIME),
    "node": ("Node.js", RUNTIME),
    "python": ("Python", RUNTIME),
    "java": ("Java", RUNTIME),
    "mozilla": ("Mozilla", RUNTIME),
    "electron": ("Electron", RUNTIME),
    "applewebkit": ("AppleWebKit", RUNTIME),
}
# fmt: on
# Within a kind, the earlier entry wins: Edge's agent also names Chrome and Safari,
# Cursor's also names Code.
_RANK = {name: rank for rank, name in enumerate(KNOWN)}
_OPENAI_LANGUAGES = {"python": "Python", "js": "JS", "node": "JS", "java": "Java", "go": "Go"}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]


@lru_cache(maxsize=1024)
def parse_user_agent(ua: str) -> tuple[str, str]:
    """(client name, version) for the console; ``("", "")`` when nothing is sent."""
    best: tuple[int, int, str, str] | None = None  # (kind, rank, name, version)
    ide: tuple[int, str] | None = None  # (rank, name)
    first: tuple[str, str] | None = None  # the first unknown product, with a version
    for match in _TOKEN.finditer(ua[:512]):
        raw, version, spaced = match.group(1), match.group(2) or "", match.group(3) or ""
        if match.group(2) is None and not spaced:
            continue  # a word ("like Gecko", "code review bot"), not a product
        key = raw.lower()
        known = KNOWN.get(key)
        if known is None:
            if first is None and match.group(2) is not None:  # not "Windows NT 10.0"
                first = (raw, version)
            continue
        name, kind = known
        if not version:  # "PyCharm 2024.1"
            version = spaced
        elif name == "OpenAI" and version.lower() in _OPENAI_LANGUAGES:
            name, version = f"OpenAI {_OPENAI_LANGUAGES[version.lower()]}", spaced
        candidate = (kind, _RANK[key], name, version)
        if kind == IDE and (ide is None or candidate[1] < ide[0]):
            ide = (candidate[1], name)
        if best is None or candidate[:2] < best[:2]:
            best = candidate
    if best is not None and (best[0] <= IDE or first is None):
        kind, _, name, version = best
        if kind < IDE and ide is not None and ide[1] not in name:
            name = f"{name} ({ide[1]})"
    elif first is not None:
        name, version = first
    else:
        return "", ""
    return _cut(name, NAME_MAX), _cut(version, VERSION_MAX)
