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


def main() -> None:
    import uvicorn.main

    uvicorn.main.main(args=uvicorn_argv(sys.argv[1:]), prog_name="kodify_site.serve")


if __name__ == "__main__":
    main()
