"""Hostile cases about who may do what: the management API's input, an auditor trying to
write, a forged client address, the live journal's WebSocket from a foreign page, and
one user's events posted for another user's completion.
"""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from attack import rawhttp
from attack.findings import Row
from attack.hostile import CHAT, COMPLETIONS, chat, describe, expect_error, openai_error
from attack.target import Target
from kodify_site.testing import wait_until

FORGED_IP = "203.0.113.66"  # TEST-NET-3: nobody's address
_CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def drf_error(response: httpx.Response) -> bool:
    """Whether the body is a DRF error: a JSON object (``detail`` or field messages)."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and bool(body)


def management_input(target: Target, client: httpx.Client) -> Row:
    row = Row("hostile: management API")
    admin = target.admin()
    for name in ("eve\r\nadmin", "eve\nx", "eve\rx", "\nleading", "trailing\r\n", "nul\x00x"):
        response = client.post("/api/users/", json={"username": name}, headers=admin)
        expect_error(row, response, 400, f"POST /api/users/ username {name!r}", drf_error)
    bystander = target.users["bystander"]["id"]
    response = client.patch(f"/api/users/{bystander}/", json={"username": "b\r\nx"}, headers=admin)
    expect_error(row, response, 400, "PATCH /api/users/{id}/ username with CR/LF", drf_error)
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    response = client.post(
        "/api/tokens/", json={"user": bystander, "name": "past", "expires_at": past}, headers=admin
    )
    expect_error(row, response, 400, "POST /api/tokens/ with a past expiry", drf_error)
    issued = client.post(
        "/api/tokens/", json={"user": bystander, "name": "expiry-probe"}, headers=admin
    )
    if row.expect(issued.status_code == 201, f"POST /api/tokens/: {describe(issued)}"):
        token_id = issued.json()["id"]
        response = client.patch(
            f"/api/tokens/{token_id}/", json={"expires_at": past}, headers=admin
        )
        expect_error(row, response, 400, "PATCH /api/tokens/{id}/ with a past expiry", drf_error)
    response = client.delete(f"/api/users/{bystander}/", headers=admin)
    expect_error(row, response, 405, "DELETE /api/users/{id}/", drf_error)
    response = client.get("/api/users/", headers={"Authorization": "Bearer not-the-key"})
    expect_error(row, response, 401, "/api/users/ with a wrong admin key", drf_error)
    response = client.get("/api/users/", headers=target.bearer())
    row.expect(
        response.status_code in (401, 403),
        f"/api/users/ with an IDE token: expected 401/403, got {describe(response)}",
    )
    return row


def console_login(target: Target, username: str, password: str) -> httpx.Client:
    """A client logged in to the console (session and CSRF cookies), as a browser would be."""
    client = httpx.Client(base_url=target.url, timeout=30)
    page = client.get("/admin/login/")
    match = _CSRF_FIELD.search(page.text)
    form = {
        "username": username,
        "password": password,
        "csrfmiddlewaretoken": match.group(1) if match else "",
        "next": "/admin/",
    }
    client.post("/admin/login/", data=form)
    return client


def auditor_writes(target: Target, client: httpx.Client) -> Row:
    row = Row("hostile: auditor writes")
    with contextlib.closing(console_login(target, "auditor", target.auditor_password)) as auditor:
        logged_in = auditor.get("/api/users/")
        if not row.expect(
            logged_in.status_code == 200,
            f"the auditor could not log in or read /api/users/: {describe(logged_in)}",
        ):
            return row
        csrf = {"X-CSRFToken": auditor.cookies.get("csrftoken") or ""}
        bystander = target.users["bystander"]["id"]
        writes: list[tuple[str, str, dict[str, Any]]] = [
            ("POST", "/api/users/", {"username": "by-auditor"}),
            ("PATCH", f"/api/users/{bystander}/", {"is_active": False}),
            ("PUT", f"/api/users/{bystander}/", {"username": "renamed"}),
            ("POST", "/api/tokens/", {"user": bystander, "name": "by-auditor"}),
            ("POST", f"/api/tokens/{_a_token_id(target, client)}/revoke/", {}),
        ]
        for method, path, body in writes:
            response = auditor.request(method, path, json=body, headers=csrf)
            ok = response.status_code == 403 and drf_error(response)
            ok = ok and "csrf" not in response.text.lower()  # refused for the role, not CSRF
            row.expect(ok, f"auditor {method} {path}: expected 403, got {describe(response)}")
        form = {"csrfmiddlewaretoken": csrf["X-CSRFToken"], "username": "by-auditor"}
        for path in (
            "/admin/accounts/apiuser/add/",
            f"/admin/accounts/apiuser/{bystander}/change/",
            "/admin/accounts/apitoken/add/",
            "/admin/auth/user/add/",
            "/admin/gateway/upstreamserver/add/",
        ):
            response = auditor.post(path, data=form)
            row.expect(
                response.status_code == 403,
                f"auditor POST {path}: expected 403, got {response.status_code}",
            )
    return row


def _a_token_id(target: Target, client: httpx.Client) -> int:
    """The id of the bystander's token (the auditor tries to revoke it)."""
    response = client.get("/api/tokens/", params={"username": "bystander"}, headers=target.admin())
    results = response.json().get("results") or [{"id": 0}]
    return int(results[0]["id"])


def forwarded_for(target: Target, client: httpx.Client) -> Row:
    """With no trusted proxy configured, X-Forwarded-For from 127.0.0.1 is not believed."""
    row = Row("hostile: forged X-Forwarded-For")
    request_ids = []
    for header in ("X-Forwarded-For", "X-Real-IP", "Forwarded"):
        value = f"for={FORGED_IP}" if header == "Forwarded" else FORGED_IP
        response = client.post(CHAT, json=chat(), headers={**target.bearer(), header: value})
        if row.expect(response.status_code == 200, f"chat with {header}: {describe(response)}"):
            request_ids.append((header, response.headers["x-request-id"]))
    for header, request_id in request_ids:
        rows = wait_until(lambda rid=request_id: target.journal_rows([rid]), 30)  # type: ignore[misc]
        if not row.expect(bool(rows), f"no journal row for {request_id} ({header})"):
            continue
        stored = str(rows[0]["client_ip"])
        row.expect(
            stored != FORGED_IP,
            f"{header}: {FORGED_IP} from 127.0.0.1 stored as client_ip of {request_id}",
        )
    return row


def websocket_origins(target: Target, client: httpx.Client) -> Row:
    """The live journal's socket opens only for the console's own pages."""
    row = Row("hostile: WebSocket origin")
    with contextlib.closing(console_login(target, "auditor", target.auditor_password)) as auditor:
        cookie = "; ".join(f"{name}={value}" for name, value in auditor.cookies.items())
    address = target.host_port()
    own = target.url
    for origin, expected in (
        ("null", False),
        ("https://evil.example", False),
        (own.replace("127.0.0.1", "127.0.0.1.evil.example"), False),
        (own, True),  # the control: the console's own page opens it
    ):
        answer = rawhttp.websocket_handshake(
            address, "/ws/journal/", {"Origin": origin, "Cookie": cookie}
        )
        opened = answer.status == 101
        row.expect(
            opened == expected,
            f"/ws/journal/ with Origin {origin}: expected "
            f"{'101' if expected else 'a refusal'}, got {answer.status}",
        )
    answer = rawhttp.websocket_handshake(address, "/ws/journal/", {"Origin": own})
    row.expect(answer.status != 101, f"/ws/journal/ without a session: got {answer.status}")
    return row


TABBY = {"language": "python", "segments": {"prefix": "def add(a, b):\n    ", "suffix": "\n"}}


def foreign_events(target: Target, client: httpx.Client) -> Row:
    """``POST /v1/events`` for another user's completion: 404, as if it did not exist."""
    row = Row("hostile: foreign events")
    response = client.post(COMPLETIONS, json=TABBY, headers=target.bearer("attacker"))
    if not row.expect(response.status_code == 200, f"Tabby completion: {describe(response)}"):
        return row
    completion_id = response.json()["id"]
    event = {"type": "select", "completion_id": completion_id, "choice_index": 0}
    response = client.post("/v1/events", json=event, headers=target.bearer("bystander"))
    expect_error(row, response, 404, "bystander's event on the attacker's completion", openai_error)
    forged = {**event, "completion_id": completion_id[:-4] + "0000"}
    response = client.post("/v1/events", json=forged, headers=target.bearer("attacker"))
    expect_error(row, response, 404, "event with a forged signature", openai_error)
    response = client.post("/v1/events", json=event, headers=target.bearer("attacker"))
    row.expect(response.status_code == 200, f"the owner's own event: {describe(response)}")
    response = client.post("/v1/events", json=event)
    expect_error(row, response, 401, "event without a token", openai_error)
    return row


def odd_queries(target: Target, client: httpx.Client) -> Row:
    """Query values the review found answered wrongly, answered as documented now.

    * A NUL in ``?search=`` is refused with the fields' errors (an object), not a bare
      JSON list.
    * A date with a UTC offset beyond PostgreSQL's ±15:59 (Python takes up to ±23:59) is
      compared in UTC, not sent to the database, whose refusal was a 500.
    """
    row = Row("hostile: odd queries")
    admin = target.admin()
    far = "2030-01-01T00:00:00+20:00"
    for path in ("/api/users/", "/api/tokens/"):
        response = client.get(path, params={"search": "a\x00b"}, headers=admin)
        expect_error(row, response, 400, f"GET {path} with a NUL in search", drf_error)
    for query in ({"until": "0637-07-27T02:16:00-23:25"}, {"since": far}):
        response = client.get("/api/audit/", params=query, headers=admin)
        row.expect(response.status_code == 200, f"GET /api/audit/ {query}: {describe(response)}")
    bystander = target.users["bystander"]["id"]
    issued = client.post(
        "/api/tokens/", json={"user": bystander, "name": "far", "expires_at": far}, headers=admin
    )
    row.expect(
        issued.status_code in (201, 400) and drf_error(issued),
        f"POST /api/tokens/ expiring at {far}: expected 201 or 400, got {describe(issued)}",
    )
    return row


CASES = (
    management_input,
    odd_queries,
    auditor_writes,
    forwarded_for,
    websocket_origins,
    foreign_events,
)
