"""What the published contract adds to FastAPI's: the deployment's model names and most books per batch, and
``Allow`` on every 405.

The OpenAPI document lists the models this service found at start-up as the enum of every ``model``
field, so a client (or a schema-driven fuzzer) knows exactly which names are accepted; a model folder
added later is served once the service restarts. Starlette's 405 names only the methods of the first
route whose path matches; ``allowed_methods`` asks every route (routers included) which methods it serves
on the path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.routing import Match
from starlette.types import Scope

from booknlp_api.config import Settings
from booknlp_api.models.manifest import available_models

_BODIES = ("application/json", "multipart/form-data")
_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def install_contract(app: FastAPI, settings: Settings) -> None:
    """Publish the model names found in ``settings.models_dir`` in the app's OpenAPI document."""
    generate: Callable[[], dict[str, Any]] = app.openapi
    names = sorted(available_models(settings.models_dir))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = with_model_names(generate(), names)
            batch = spec["paths"]["/v1/batches"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
            batch["properties"]["file"]["maxItems"] = settings.max_batch_books
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def with_model_names(spec: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """``spec`` with ``names`` as the enum of the request bodies' ``model`` (unchanged when there are none)."""
    if not names:
        return spec
    bodies = [spec["components"]["schemas"]["AnalyzeRequest"]]
    content = spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
    bodies += [content[media]["schema"] for media in _BODIES]
    bodies.append(spec["paths"]["/v1/batches"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"])
    for body in bodies:
        field = body["properties"]["model"]
        for choice in field.get("anyOf", [field]):
            if choice.get("type") == "string":
                choice["enum"] = names
    return spec


def allowed_methods(app: Any, scope: Scope) -> list[str]:
    """Every method some route serves in full on this request's path, sorted (HEAD comes with GET)."""
    return sorted(method for method in _METHODS
                  if any(route.matches({**scope, "method": method})[0] == Match.FULL for route in app.router.routes))
