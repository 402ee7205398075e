// The live list of pytest_smtp's web view: fetches /api/transactions with the search form's
// fields and renders it again whenever the server announces a change (server-sent events).
"use strict";
(function () {
  const form = document.getElementById("search");
  const rows = document.getElementById("rows");
  const status = document.getElementById("status");
  const count = document.getElementById("count");
  let pending = null;

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function query() {
    const params = new URLSearchParams();
    for (const [name, value] of new FormData(form)) {
      if (String(value).trim() !== "") params.set(name, String(value).trim());
    }
    return params.toString();
  }

  function render(items, started) {
    const frag = document.createDocumentFragment();
    for (const t of items) {
      const tr = document.createElement("tr");
      tr.className = "txn txn-" + (t.outcome || "in-progress");
      tr.dataset.id = t.id;
      cell(tr, t.id);
      cell(tr, t.outcome || "in progress", "outcome outcome-" + (t.outcome || "in-progress"));
      cell(tr, "<" + (t.mail_from || "") + ">");
      cell(tr, t.recipients.map((r) => r.address).join(", "));
      const subject = cell(tr, "", "subject");
      if (t.has_message) {
        const a = document.createElement("a");
        a.href = "/messages/" + t.id;
        a.textContent = t.subject == null ? "(no subject)" : t.subject;
        subject.appendChild(a);
      }
      cell(tr, t.outcome === "accepted" ? "" : t.reply);
      cell(tr, t.started_at);
      const actions = cell(tr, "");
      const del = document.createElement("button");
      del.type = "button";
      del.textContent = "delete";
      del.className = "delete";
      del.addEventListener("click", () => {
        fetch("/api/messages/" + t.id, { method: "DELETE" }).then(refresh);
      });
      actions.appendChild(del);
      frag.appendChild(tr);
    }
    rows.replaceChildren(frag);
    count.textContent = items.length + " shown";
    document.body.dataset.rendered = String(items.length);
    document.body.dataset.renderMs = String(performance.now() - started);
  }

  function refresh() {
    const started = performance.now();
    const request = fetch("/api/transactions?" + query())
      .then((r) => r.json())
      .then((data) => {
        if (pending === request) render(data.transactions || [], started);
      });
    pending = request;
    return request;
  }

  form.addEventListener("input", refresh);
  form.addEventListener("submit", (e) => { e.preventDefault(); refresh(); });
  document.getElementById("clear").addEventListener("click", () => {
    fetch("/api/messages", { method: "DELETE" }).then(refresh);
  });

  const events = new EventSource("/api/events");
  events.addEventListener("hello", () => {
    status.textContent = "live";
    document.body.dataset.live = "1";
    refresh();
  });
  for (const name of ["transaction", "delete", "clear"]) events.addEventListener(name, refresh);
  events.onerror = () => { status.textContent = "reconnecting…"; document.body.dataset.live = ""; };
})();
