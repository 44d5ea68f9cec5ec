"""``booknlp-api serve``: the app under uvicorn, one API process; its lifespan starts the worker processes."""

from __future__ import annotations

import gc
import ipaddress
import logging

import uvicorn

from booknlp_api.api.app import create_app
from booknlp_api.api.head_deadline import with_head_deadline
from booknlp_api.config import Settings

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def exposure_refusal(settings: Settings, *, insecure: bool) -> str | None:
    """Why serving would expose every job to anyone who can reach the port; None when it is safe or allowed."""
    if settings.auth == "required" or is_loopback(settings.host):
        return None
    if insecure:
        log.warning("serving on %s with BOOKNLP_AUTH=disabled (--insecure): anyone who reaches the port can read, "
                    "submit and cancel every job", settings.host)
        return None
    return (f"refusing to serve on {settings.host} with BOOKNLP_AUTH=disabled: anyone who reaches the port could "
            "read, submit and cancel every job. Use API keys (BOOKNLP_AUTH=required, the default), listen on "
            "127.0.0.1, or pass --insecure if something in front of the service does the authentication")


def server_config(settings: Settings) -> uvicorn.Config:
    """The app under uvicorn as ``serve`` runs it (tests start the same configuration in a thread)."""
    # One uvicorn process: each would start its own BOOKNLP_WORKERS worker processes (model copies).
    # h11, not httptools: only h11 takes a cap on the request head (the headers a client may send); our
    # subclass of its protocol adds a deadline on the head (api.head_deadline).
    # log_config=None: uvicorn's access and error loggers keep no handler of their own and reach the
    # process's one handler (booknlp_api.logs), so they share its format and request ids.
    return uvicorn.Config(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level,
                          workers=1, log_config=None,
                          http=with_head_deadline(settings.head_timeout_seconds),
                          h11_max_incomplete_event_size=settings.max_header_bytes)


def serve(settings: Settings) -> None:
    log.info("the web page: http://%s:%d/ (with API keys on, make one with `booknlp-api keys create NAME`)",
             settings.host, settings.port)
    config = server_config(settings)
    # The API process imports the engine's libraries (torch, spaCy: ~300,000 objects) though it never runs an
    # analysis. Left in the collector's view, each full collection walks them all on the event loop, stalling
    # every request, probes included (3-4 s each on the loaded 2-core dev machine); frozen, it walks only
    # what requests made. Here, not in the app: tests build many apps in one process.
    gc.freeze()
    uvicorn.Server(config).run()
