"""Swagger UI and ReDoc served from assets installed with the package, so ``/docs`` works air-gapped.

FastAPI's default pages load their JavaScript from a CDN and render blank without internet. Each page
carries a strict Content-Security-Policy: scripts only from this service plus the page's own inline
script, allowed by its hash (no ``'unsafe-inline'`` script, no ``eval``); nothing from elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs-assets"
ASSETS_DIR = resources.files("fastapi_offline").joinpath("static")
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)
# Styles may be inline: both UIs set them from script (ReDoc injects <style> elements); ReDoc's search
# runs in a worker it builds from a blob.
_DOCS_POLICY = ("default-src 'none'; script-src {scripts}; style-src 'self' 'unsafe-inline'; "
                "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
                "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def with_policy(page: HTMLResponse) -> HTMLResponse:
    """``page`` with a CSP that allows its own inline scripts by their SHA-256 and nothing inline besides."""
    body = bytes(page.body).decode()
    scripts = ["'self'", *(f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
                           for script in _INLINE_SCRIPT.findall(body))]
    page.headers["Content-Security-Policy"] = _DOCS_POLICY.format(scripts=" ".join(scripts))
    return page


def install_docs(app: FastAPI) -> None:
    """Add /docs, /redoc and the assets they load; the app must be built with docs_url=None, redoc_url=None."""
    app.mount(ASSETS_URL, StaticFiles(directory=str(ASSETS_DIR)), name="docs-assets")
    oauth2_redirect = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return with_policy(get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{oauth2_redirect}", swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png"))

    @app.get(oauth2_redirect, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return with_policy(get_swagger_ui_oauth2_redirect_html())

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return with_policy(get_redoc_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
                                          redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
                                          redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png", with_google_fonts=False))
