// The journal's live page: rows pushed over /ws/journal/ go on top of the table.
// Text is set with textContent only: journal content is never parsed as HTML.
"use strict";

(function () {
  const MAX_ROWS = 500;
  const RETRY_FIRST_MS = 1000;
  const RETRY_MAX_MS = 30000;

  const table = document.getElementById("live-rows");
  const status = document.getElementById("live-status");
  if (!table || !status) {
    return;
  }
  const body = table.tBodies[0];
  const detailUrl = table.dataset.detailUrl;
  let retry = RETRY_FIRST_MS;

  function show(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  function cell(row, text, className) {
    const td = row.insertCell();
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (className) {
      td.className = className;
    }
    return td;
  }

  function number(value) {
    return value === null || value === undefined ? "" : Math.round(value).toString();
  }

  function time(iso) {
    // "2026-11-25T22:38:00.123456+00:00" -> "2026-11-25 22:38:00", as the server renders it.
    return iso ? iso.replace("T", " ").slice(0, 19) : "";
  }

  function addRow(entry) {
    if (body.querySelector(`tr[data-request-id="${CSS.escape(entry.request_id)}"]`)) {
      return; // already shown (the page's first rows and the first batch may overlap)
    }
    const row = document.createElement("tr");
    row.dataset.requestId = entry.request_id;
    row.className = "journal-live-new";
    const when = cell(row, "", "nowrap");
    const link = document.createElement("a");
    link.href = detailUrl.replace("REQUEST_ID", encodeURIComponent(entry.request_id));
    link.textContent = time(entry.created_at);
    when.appendChild(link);
    cell(row, entry.username);
    cell(row, entry.client_name);
    cell(row, entry.endpoint);
    cell(row, entry.model);
    const state = cell(row, "", "nowrap");
    const code = document.createElement("span");
    code.className = `journal-status journal-status-${String(entry.status).charAt(0)}xx`;
    code.textContent = String(entry.status);
    state.appendChild(code);
    if (entry.cancelled) {
      const tag = document.createElement("span");
      tag.className = "journal-tag";
      tag.textContent = "cancelled";
      state.append(" ", tag);
    }
    cell(row, number(entry.ttft_ms), "num");
    cell(row, number(entry.latency_ms), "num");
    const tokens = (value) => (value === null || value === undefined ? "–" : String(value));
    cell(row, `${tokens(entry.prompt_tokens)} / ${tokens(entry.completion_tokens)}`, "num");
    cell(row, entry.preview, "journal-preview");
    body.insertBefore(row, body.firstChild);
  }

  function trim() {
    while (body.rows.length > MAX_ROWS) {
      body.deleteRow(body.rows.length - 1);
    }
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${window.location.host}${table.dataset.socketPath}`);
    let opened = false;
    show("connecting", "connecting…");
    socket.addEventListener("open", () => {
      opened = true;
      retry = RETRY_FIRST_MS;
      show("open", "live");
    });
    socket.addEventListener("message", (message) => {
      const batch = JSON.parse(message.data);
      // A batch comes oldest first: each row goes on top of the previous one.
      for (const entry of batch.rows || []) {
        addRow(entry);
      }
      trim();
    });
    socket.addEventListener("close", () => {
      // A refused socket (logged out, permission gone) never opens: the server answers
      // the handshake with 403, which a page cannot tell from a network failure.
      const why = opened ? "disconnected" : "cannot connect (still logged in?)";
      show("closed", `${why}, retrying in ${Math.round(retry / 1000)} s`);
      window.setTimeout(connect, retry);
      retry = Math.min(retry * 2, RETRY_MAX_MS);
    });
  }

  connect();
})();
