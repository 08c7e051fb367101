"""The page ``GET /`` answers: try the server from a browser. Self-contained (no CDN, no external file): a text
box, the adapter's labels as toggles, the mode, and the result drawn as highlighted spans (label and probability
on hover), with a table of the entities and the per-stage timings. It talks to the same ``/v1/models`` and
``/v1/ner`` endpoints as any client; the user's text is only ever set as text, never parsed as HTML. On a server
with an API key, the page asks for it when an endpoint answers 401 and keeps it in the browser tab only
(sessionStorage, the same item as ``/docs``)."""

from padellm_serve.docs import KEY_STORAGE

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>padellm: named entities</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.4rem; margin-bottom: .2rem; }
  .sub { color: #666; margin-top: 0; }
  textarea { width: 100%; box-sizing: border-box; font: inherit; padding: .5rem; min-height: 5rem; }
  .controls { display: flex; flex-wrap: wrap; gap: 1rem; align-items: center; margin: .6rem 0; }
  .labels label { margin-right: .6rem; white-space: nowrap; }
  button { font: inherit; padding: .35rem 1.2rem; cursor: pointer; }
  #result { font-size: 1.1rem; line-height: 2.2; padding: .8rem; border: 1px solid #ddd; border-radius: 6px;
            white-space: pre-wrap; min-height: 2rem; }
  mark.entity { padding: .1rem .25rem; border-radius: 4px; background: var(--color); }
  mark.entity::after { content: attr(data-label); font-size: .65rem; font-weight: 600; margin-left: .3rem;
                       vertical-align: super; }
  table { border-collapse: collapse; margin-top: 1rem; }
  td, th { padding: .2rem .8rem; border-bottom: 1px solid #eee; text-align: left; }
  #error { color: #b00020; white-space: pre-wrap; }
  #timings { color: #555; font-size: .9rem; margin-top: .6rem; }
</style>
</head>
<body>
<h1>padellm</h1>
<p class="sub" id="models">loading the adapters...</p>
<form id="key" hidden>This server needs an API key (kept in this tab only):
  <input type="password" id="key-input" autocomplete="off"> <button id="use-key" type="submit">use it</button></form>
<form id="form">
  <textarea id="text" name="text" placeholder="Type a sentence, e.g. Peter Blackburn went to Brussels."></textarea>
  <div class="controls">
    <label>mode <select id="mode" name="mode"></select></label>
    <span class="labels" id="labels"></span>
    <button id="run" type="submit">Find entities</button>
  </div>
</form>
<div id="error" role="alert"></div>
<div id="result" aria-live="polite"></div>
<table id="entities" hidden><thead><tr><th>label</th><th>mention</th><th>start-end</th><th>probability</th></tr>
</thead><tbody></tbody></table>
<div id="timings"></div>
<script>
"use strict";
const byMode = {};
const el = (id) => document.getElementById(id);
const KEY_STORAGE = "@KEY_STORAGE@";

function withKey(headers) {
  const key = sessionStorage.getItem(KEY_STORAGE);
  return key ? {...headers, "Authorization": "Bearer " + key} : headers;
}

function askForKey(message) {
  el("key").hidden = false;
  el("error").textContent = message;
  el("key-input").focus();
}

function color(label) {  // a stable pastel per label
  let hash = 0;
  for (const c of label) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  return `hsl(${hash % 360}, 70%, 82%)`;
}

function showLabels() {
  const box = el("labels");
  box.replaceChildren();
  for (const label of byMode[el("mode").value].labels) {
    const toggle = document.createElement("label");
    const input = Object.assign(document.createElement("input"), {type: "checkbox", checked: true, value: label});
    input.className = "label-toggle";
    toggle.append(input, " " + label);
    box.append(toggle);
  }
}

function render(text, entities, timings) {
  const result = el("result");
  result.replaceChildren();
  let at = 0;
  const shown = [...entities].sort((a, b) => a.start - b.start || b.end - a.end);
  for (const e of shown) {
    if (e.start < at) continue;  // nested or overlapping: in the table below only
    result.append(text.slice(at, e.start));
    const mark = document.createElement("mark");
    mark.className = "entity";
    mark.dataset.label = e.label;
    mark.style.setProperty("--color", color(e.label));
    mark.title = e.label + (e.probability != null ? ` \\u00b7 p = ${e.probability.toFixed(3)}` : "");
    mark.textContent = text.slice(e.start, e.end);
    result.append(mark);
    at = e.end;
  }
  result.append(text.slice(at));
  const rows = el("entities").tBodies[0];
  rows.replaceChildren();
  for (const e of entities) {
    const row = rows.insertRow();
    for (const cell of [e.label, e.text, `${e.start}-${e.end}`,
                        e.probability != null ? e.probability.toFixed(3) : "-"]) {
      row.insertCell().textContent = cell;
    }
  }
  el("entities").hidden = entities.length === 0;
  el("timings").textContent = timings ? "timings (ms): " + Object.entries(timings)
      .map(([stage, ms]) => `${stage} ${ms.toFixed(1)}`).join(", ") : "";
  if (!entities.length) el("timings").textContent = "no entities. " + el("timings").textContent;
}

async function run(event) {
  event.preventDefault();
  el("error").textContent = "";
  const text = el("text").value;
  const model = byMode[el("mode").value];  // none yet while the server waits for a key
  const body = {input: text, return_timings: true};
  if (model) {
    body.mode = model.mode;
    const labels = [...document.querySelectorAll(".label-toggle:checked")].map((x) => x.value);
    if (labels.length !== model.labels.length) body.labels = labels;
  }
  el("run").disabled = true;
  try {
    const response = await fetch("/v1/ner", {method: "POST", headers: withKey({"Content-Type": "application/json"}),
                                             body: JSON.stringify(body)});
    const answer = await response.json();
    if (response.status === 401) {
      askForKey(answer.error.message);
      return;
    }
    if (!response.ok) {
      el("error").textContent = answer.error ? answer.error.message : `HTTP ${response.status}`;
      return;
    }
    render(text, answer.results[0].entities, answer.timings_ms);
  } catch (err) {
    el("error").textContent = String(err);
  } finally {
    el("run").disabled = false;
  }
}

async function start() {
  const response = await fetch("/v1/models", {headers: withKey({})});
  const answer = await response.json();
  if (response.status === 401) {
    el("models").textContent = "";
    askForKey(answer.error.message);
    return;
  }
  el("key").hidden = true;
  el("error").textContent = "";
  if (!response.ok) {
    el("models").textContent = answer.error ? answer.error.message : `HTTP ${response.status}`;
    setTimeout(start, 3000);
    return;
  }
  el("mode").replaceChildren();
  for (const model of answer.data) {
    byMode[model.mode] = model;
    el("mode").append(new Option(`${model.mode} (${model.id})`, model.mode));
  }
  el("models").textContent = answer.data.map((m) => `${m.mode}: ${m.id}, ${m.template}`).join(" \\u00b7 ");
  showLabels();
}

el("mode").addEventListener("change", showLabels);
el("form").addEventListener("submit", run);
el("key").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORAGE, el("key-input").value.trim());
  start();
});
start();
</script>
</body>
</html>
""".replace("@KEY_STORAGE@", KEY_STORAGE)
