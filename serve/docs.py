"""``/docs``: Swagger UI from files installed with padellm (the ``fastapi-swagger`` package's copy of Swagger UI
5, which reads OpenAPI 3.1), so the page works on a machine without internet. With an API key set, the page asks
for the key, keeps it in the browser tab only (sessionStorage, shared with the page at ``/``) and sends it with
every request it makes, ``/openapi.json`` included."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from padellm.errors import MissingPackageError

ASSETS = "/docs/assets"
KEY_STORAGE = "padellm-api-key"  # the sessionStorage item both pages use

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>padellm API</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
<style>#key {{ font: 14px system-ui, sans-serif; margin: 1rem 2rem; }}</style>
</head>
<body>
<form id="key" hidden>This server needs an API key (kept in this tab only):
  <input type="password" id="key-input" autocomplete="off"> <button type="submit">use it</button></form>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script>
"use strict";
const STORAGE = "{storage}";
function withKey(request) {{
  const key = sessionStorage.getItem(STORAGE);
  if (key) request.headers["Authorization"] = "Bearer " + key;
  return request;
}}
async function start() {{
  const key = sessionStorage.getItem(STORAGE);
  const probe = await fetch("/openapi.json", {{headers: key ? {{"Authorization": "Bearer " + key}} : {{}}}});
  if (probe.status === 401) {{
    document.getElementById("key").hidden = false;
    return;
  }}
  document.getElementById("key").hidden = true;
  window.ui = SwaggerUIBundle({{url: "/openapi.json", dom_id: "#swagger-ui", requestInterceptor: withKey}});
}}
document.getElementById("key").addEventListener("submit", (event) => {{
  event.preventDefault();
  sessionStorage.setItem(STORAGE, document.getElementById("key-input").value.trim());
  start();
}});
start();
</script>
</body>
</html>
"""


def swagger_ui_files() -> Path:
    try:
        return Path(str(resources.files("fastapi_swagger") / "resources"))
    except ModuleNotFoundError as err:
        raise MissingPackageError("fastapi_swagger", "pip install -e .[serve]", "padellm serve --docs") from err


def add_docs(app: FastAPI) -> None:
    """Mount Swagger UI at ``/docs``."""
    app.mount(ASSETS, StaticFiles(directory=swagger_ui_files()), name="docs-assets")
    page = PAGE.format(assets=ASSETS, storage=KEY_STORAGE)

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs():
        return HTMLResponse(page)
