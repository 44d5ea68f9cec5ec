"""The web page at ``/``: submit a book, follow it live and explore the result, from files in the package.

Plain HTML, CSS and JavaScript modules (no build step, nothing from a CDN), so the page works air-gapped.
It carries its own strict Content-Security-Policy: scripts, styles and requests only from this service, no
inline script or style, so a book's words shown in the page can never run as code. The page and its assets
need no API key (they hold no book); the page sends the key it is given with every request to the API.
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_URL = "/static"
STATIC_DIR = resources.files("booknlp_api.api").joinpath("static")
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
"""blob: downloads are navigations with ``download``, which CSP does not govern; nothing else is allowed."""


def install_page(app: FastAPI) -> None:
    app.mount(STATIC_URL, StaticFiles(directory=str(STATIC_DIR)), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        html = STATIC_DIR.joinpath("index.html").read_text(encoding="utf-8")
        return HTMLResponse(html, headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-cache"})
