"""The journal's console pages: list, one request, CSV export, live view, dashboards.

They live beside Django's admin and look like it (admin templates, the admin's login),
for staff users with ``journal.view_entry``: the Auditors and Administrators groups.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from journal import charts, dashboards, export, selectors
from journal.conversation import chat_messages
from journal.forms import EntryFilterForm
from journal.live import VIEW_PERMISSION

LIVE_BACKLOG = 20  # rows the live page starts with
DAY_CHOICES = (1, 7, 14, 30, 90)

View = Callable[..., HttpResponseBase]


def console_page(view: View) -> View:
    """The admin's rules: staff log in on the admin's page; the permission, or 403."""

    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        user = request.user
        if not (user.is_active and user.is_staff):
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not user.has_perm(VIEW_PERMISSION):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return require_safe(never_cache(checked))


def _page(request: HttpRequest, template: str, title: str, **context: Any) -> HttpResponse:
    return render(
        request,
        f"journal/{template}",
        {**admin.site.each_context(request), "title": title, **context},
    )


def _filter_form(request: HttpRequest) -> EntryFilterForm:
    form = EntryFilterForm(request.GET, choices=selectors.filter_choices())
    form.is_valid()
    return form


@console_page
def entry_list(request: HttpRequest) -> HttpResponse:
    form = _filter_form(request)
    try:
        before = _cursor(request, "before")
        after = _cursor(request, "after")
    except ValueError as exc:
        return HttpResponseBadRequest(str(exc))
    if not form.is_valid():
        # No rows rather than the rows of the valid fields only: a wider set than was
        # asked for reads as the answer.
        return _page(
            request,
            "list.html",
            "Journal",
            tab="list",
            form=form,
            page=selectors.EntryPage([], older=None, newer=None),
            filtered=True,
            problems=form.problems(),
        )
    filters = form.filters()
    page = selectors.entry_page(filters, before=before, after=after)
    return _page(
        request,
        "list.html",
        "Journal",
        tab="list",
        form=form,
        page=page,
        filtered=filters.active,
        total=None if filters.active else selectors.estimated_total(),
    )


def _cursor(request: HttpRequest, name: str) -> selectors.Cursor | None:
    text = request.GET.get(name)
    return selectors.Cursor.decode(text) if text else None


@console_page
def entry_detail(request: HttpRequest, request_id: str) -> HttpResponse:
    found = selectors.entry_detail(request_id)
    if found is None:
        raise Http404("No journal entry with this request id.")
    return _page(
        request,
        "detail.html",
        f"Request {request_id}",
        entry=found.entry,
        events=found.events,
        token=found.token,
        api_user=found.api_user,
        # Links only for whoever may open the page behind them: a 403 is no help.
        link_token=request.user.has_perm("accounts.view_apitoken"),
        link_user=request.user.has_perm("accounts.view_apiuser"),
        request_body=pretty_json(found.entry.request_body),
        conversation=chat_messages(found.entry.request_body),
    )


def pretty_json(text: str) -> str:
    """Indented when it parses (a truncated body does not: it is shown as stored)."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


@console_page
def entry_export(request: HttpRequest) -> HttpResponseBase:
    form = _filter_form(request)
    if not form.is_valid():
        # An export must hold exactly what was asked for, not a quietly wider set.
        return HttpResponseBadRequest(
            f"No requests exported: {form.problems()}\n", content_type="text/plain; charset=utf-8"
        )
    pieces = export.chunks(export.csv_lines(selectors.export_rows(form.filters())))
    # Under ASGI an async iterator; the sync one would make Django buffer and warn.
    body = export.async_chunks(pieces) if isinstance(request, ASGIRequest) else pieces
    response = StreamingHttpResponse(body, content_type="text/csv; charset=utf-8")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="journal-{stamp}.csv"'
    return response


@console_page
def live(request: HttpRequest) -> HttpResponse:
    backlog = selectors.entry_page(selectors.EntryFilters(), limit=LIVE_BACKLOG)
    return _page(request, "live.html", "Journal: live", tab="live", rows=backlog.rows)


@console_page
def dashboard(request: HttpRequest) -> HttpResponse:
    try:
        days = int(request.GET.get("days", dashboards.DEFAULT_DAYS))
    except ValueError:
        days = dashboards.DEFAULT_DAYS
    try:
        day = dt.date.fromisoformat(request.GET["day"]) if request.GET.get("day") else None
    except ValueError:
        day = None
    numbers = dashboards.dashboard(1, today=day, hourly=True) if day else dashboards.dashboard(days)
    per = "hour" if numbers.hourly else "day"
    columns = numbers.per_day
    labels = [column.label for column in columns]
    # A day's column opens its hours; an hour's column, that day's requests.
    links = [
        f"?day={column.day:%Y-%m-%d}" if not numbers.hourly else _journal_link(column.day)
        for column in columns
    ]

    def chart(values: list[float], **options: Any) -> charts.ColumnChart:
        return charts.column_chart(list(zip(labels, values, strict=True)), links=links, **options)

    return _page(
        request,
        "dashboard.html",
        "Journal: dashboard",
        tab="dashboard",
        board=numbers,
        per=per,
        day_choices=DAY_CHOICES,
        requests_chart=chart([c.requests for c in columns]),
        users_chart=chart([c.users for c in columns]),
        errors_chart=chart(
            [round(100 * c.error_rate, 1) if c.error_rate is not None else 0 for c in columns],
            unit="%",
            top=100,
        ),
        period_rows=[_period_row(column, hourly=numbers.hourly) for column in reversed(columns)],
        tokens_chart=chart([c.tokens for c in columns]),
        latency_chart=chart([round(c.latency_p95 or 0) for c in columns], unit=" ms"),
        rate_chart=chart(
            [round(100 * c.rate, 1) if c.rate is not None else 0 for c in columns],
            unit="%",
            top=100,
        ),
        breakdowns=[
            ("Models", _bars(numbers.by_model, numbers)),
            ("Languages", _bars(numbers.by_language, numbers)),
            ("Editors", _bars(numbers.by_client, numbers)),
            ("Users", _bars(numbers.by_user, numbers)),
            ("Features", _bars(numbers.by_feature, numbers)),
            ("Statuses", _bars(numbers.by_status, numbers)),
        ],
        acceptance=[
            ("language", "Language", _bars(numbers.acceptance_by_language, numbers)),
            ("user", "User", _bars(numbers.acceptance_by_user, numbers)),
        ],
        acceptance_top=dashboards.TOP,
    )


NONE_SHOWN = "\N{EN DASH}"


def _period_row(column: dashboards.Day, *, hourly: bool) -> dict[str, Any]:
    """A line of the per-day (or per-hour) table, its numbers written here: a year of
    lines through the template's number filters takes longer than computing them."""

    def count(value: int) -> str:
        return f"{value:,}"

    def ms(value: float | None) -> str:
        return NONE_SHOWN if value is None else f"{value:,.0f}"

    return {
        "day": f"{column.day:%Y-%m-%d}",
        "hour": "" if column.hour is None else str(column.hour),
        "label": column.label if hourly else f"{column.day:%Y-%m-%d}",
        "cells": [
            count(column.requests),
            count(column.users),
            count(column.errors),
            count(column.tokens),
            ms(column.latency_p50),
            ms(column.latency_p95),
            count(column.shown),
            count(column.accepted),
            count(column.dismissed),
            NONE_SHOWN if column.rate is None else f"{round(100 * column.rate)}%",
        ],
    }


# Dashboard breakdown column → the journal list's filter of the same rows.
_LIST_FILTERS = {
    "username": "user",
    "model": "model",
    "client_name": "client",
    "feature": "feature",
    "status": "status",
}


def _journal_link(since: dt.date, until: dt.date | None = None, **filters: str) -> str:
    query = {"since": f"{since:%Y-%m-%d}", "until": f"{(until or since):%Y-%m-%d}", **filters}
    return f"{reverse('journal:list')}?{urlencode(query)}"


def _share_link(share: dashboards.Share, board: dashboards.Dashboard) -> str:
    """The journal's rows behind a dashboard line; "" where the list has no such filter
    (languages) or no value to filter by."""
    name = _LIST_FILTERS.get(share.column)
    if name is None or not share.value:
        return ""
    return _journal_link(board.since, board.until, **{name: share.value})


def _bars(shares: list[dashboards.Share], board: dashboards.Dashboard) -> list[dict[str, Any]]:
    top = max((share.requests for share in shares), default=0)
    return [
        {
            "share": share,
            "href": _share_link(share, board),
            "requests_percent": charts.percent_of(share.requests, top),
            "rate_percent": charts.percent_of(share.rate, 1),
        }
        for share in shares
    ]
