// The action template editor (templates/admin/gateway/actiontemplate/change_form.html):
// "Preview" asks the console for the chat messages a sample request gets from the text in
// the form, saved or not; "Load the shipped text" puts the shipped template back in the
// form; on a new template, choosing another action or language loads its shipped text
// unless the text was edited.
"use strict";
// Loaded in the page's head (the admin's form media): it waits for the form.
document.addEventListener("DOMContentLoaded", function () {
  const panel = document.getElementById("template-preview-panel");
  if (!panel) {
    return; // a read-only page, or a History page
  }
  const form = panel.closest("form");
  const output = document.getElementById("template-preview");
  const code = document.getElementById("preview-code");
  const sampleFile = document.getElementById("preview-sample-file");
  const input = (name) => form.querySelector(`[name="${name}"]`);
  // An existing template's action and language are read-only: the panel carries them.
  const chosen = (name) => (input(name) ? input(name).value : panel.dataset[name] || "");
  let loaded = { system: input("system").value, user: input("user").value, code: code.value };

  function note(text, isError) {
    const paragraph = document.createElement("p");
    paragraph.className = isError ? "errornote" : "help";
    paragraph.textContent = text;
    output.replaceChildren(paragraph);
  }

  function show(messages) {
    output.replaceChildren();
    for (const message of messages) {
      const box = document.createElement("div");
      box.className = "preview-message";
      const role = document.createElement("h3");
      role.textContent = message.role;
      const content = document.createElement("pre");
      content.textContent = message.content;
      box.append(role, content);
      output.append(box);
    }
  }

  async function answer(response) {
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    if (!data) {
      throw new Error(`The console answered ${response.status}: reload the page and try again.`);
    }
    if (!response.ok) {
      throw new Error(data.error || `The console answered ${response.status}.`);
    }
    return data;
  }

  async function preview() {
    const body = new FormData();
    body.append("csrfmiddlewaretoken", input("csrfmiddlewaretoken").value);
    for (const name of ["action", "language", "system", "user"]) {
      body.append(name, chosen(name));
    }
    body.append("code", code.value);
    note("Building the messages…", false);
    try {
      const response = await fetch(panel.dataset.previewUrl, {
        method: "POST",
        body: body,
        credentials: "same-origin",
      });
      show((await answer(response)).messages);
    } catch (error) {
      note(error.message, true);
    }
  }

  async function loadShipped(always) {
    const query = new URLSearchParams({ action: chosen("action"), language: chosen("language") });
    try {
      const response = await fetch(`${panel.dataset.shippedUrl}?${query}`, {
        credentials: "same-origin",
      });
      const shipped = await answer(response);
      for (const name of ["system", "user"]) {
        if (always || input(name).value === loaded[name]) {
          input(name).value = shipped[name];
        }
      }
      if (always || code.value === loaded.code) {
        code.value = shipped.sample.code;
        sampleFile.textContent = shipped.sample.filepath;
      }
      loaded = { system: shipped.system, user: shipped.user, code: shipped.sample.code };
      note(always ? "The shipped text is in the form: save to use it." : "", false);
    } catch (error) {
      note(error.message, true);
    }
  }

  document.getElementById("preview-button").addEventListener("click", preview);
  document.getElementById("load-shipped-button").addEventListener("click", () => loadShipped(true));
  for (const name of ["action", "language"]) {
    const select = input(name);
    if (select) {
      select.addEventListener("change", () => loadShipped(false));
    }
  }
});
