"""Kodify's production server: uvicorn with the flags production needs, in one place.

``python -m kodify_site.serve --host 0.0.0.0 --port 8000 --workers 4`` runs
``uvicorn kodify_site.asgi:application`` with:

* uvloop and Kodify's httptools protocol (``kodify_site.http_protocol``: deadlines for a
  request's headers and body, so slow clients cannot hold connections);
* no access log (the journal and the metrics say more, at less cost);
* no proxy headers: which peer may speak for a client is ``KODIFY_TRUSTED_PROXIES``,
  judged by Kodify, not uvicorn's default of trusting 127.0.0.1.

Any other uvicorn option may follow (``--timeout-keep-alive 75``, ``--ssl-keyfile``, …).
"""

from __future__ import annotations

import sys

APPLICATION = "kodify_site.asgi:application"
PRODUCTION_FLAGS = (
    "--loop",
    "uvloop",
    "--http",
    "kodify_site.http_protocol:DeadlineHttpToolsProtocol",
    "--no-access-log",
    "--no-proxy-headers",
)


def uvicorn_argv(extra: list[str]) -> list[str]:
    """uvicorn's command line for Kodify, ``extra`` options last."""
    return [APPLICATION, *PRODUCTION_FLAGS, *extra]


def listen_host(extra: list[str]) -> str:
    """The address uvicorn will listen on, as its options give it (its default else)."""
    host = "127.0.0.1"
    for index, option in enumerate(extra):
        if option == "--host" and index + 1 < len(extra):
            host = extra[index + 1]
        elif option.startswith("--host="):
            host = option.partition("=")[2]
        elif option in ("--uds", "--fd") or option.startswith(("--uds=", "--fd=")):
            return "127.0.0.1"  # a socket handed over: whoever set it up chose its reach
    return host


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: assume it reaches beyond this machine


def open_api_warning(host: str) -> str | None:
    """A loud sentence when the API answers anyone and listens beyond this machine."""
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kodify_site.settings")
    from accounts.auth import AuthMode, auth_mode

    if is_loopback(host) or auth_mode() is not AuthMode.DUMMY:
        return None
    bar = "!" * 78
    return (
        f"{bar}\n"
        f"WARNING: the API is OPEN to anyone who can reach {host}: Kodify runs in dummy mode\n"
        "(neither MTSAI_AUTH nor VLLM_API_KEY is set), so it answers every request without a\n"
        "token and sends it to your model servers. Set MTSAI_AUTH=true (a token per user) or\n"
        "VLLM_API_KEY (one shared token), or listen on 127.0.0.1 only.\n"
        f"{bar}"
    )


def main() -> None:
    import uvicorn.main

    extra = sys.argv[1:]
    warning = open_api_warning(listen_host(extra))
    if warning:
        print(warning, file=sys.stderr, flush=True)
    uvicorn.main.main(args=uvicorn_argv(extra), prog_name="kodify_site.serve")


if __name__ == "__main__":
    main()
