"""API keys on every route, ownership of jobs, and per-key limits, through the real app.

The app here runs no worker (``workers=0``), so submitted jobs stay queued: ownership and the limit on
jobs at once are seen without any analysis; the cache test starts a worker thread of its own.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute, Mount, Route

from booknlp_api.api.app import create_app
from booknlp_api.config import Settings
from booknlp_api.jobs.keys import KeyLimits, KeyStore, hash_key
from tests.test_api_errors import error_of

OPEN = {"/", "/health", "/ready", "/v1/health", "/v1/ready", "/metrics", "/openapi.json", "/docs",
        "/docs/oauth2-redirect", "/redoc"}
"""What anyone may fetch: probes and metrics reveal no book; the docs are the published contract; the web page
(and its static files) asks for the key itself."""
TEXT = "Marley was dead, to begin with. Scrooge signed it."


class Keys:
    def __init__(self, data_dir: Path) -> None:
        store = KeyStore(data_dir / "jobs.sqlite3")
        self.alice = store.create("alice")
        self.bob = store.create("bob")
        self.admin = store.create("root", admin=True)
        self.burst = store.create("burst", limits=KeyLimits(rate_limit="3/2 seconds"))
        self.small = store.create("small", limits=KeyLimits(max_chars_per_day=120, max_active_jobs=2))
        self.revoked = store.create("gone")
        store.revoke("gone")
        store.close()
        self.file_key = "a-plain-key-mounted-from-a-secret"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def keyed(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Keys]]:
    data_dir = tmp_path_factory.mktemp("auth-data")
    keys = Keys(data_dir)
    key_file = data_dir / "keys"
    key_file.write_text(f"# mounted\nfiled {hash_key(keys.file_key)}\n", encoding="utf-8")
    settings = Settings(models_dir=tiny_models_dir, model="tiny", data_dir=data_dir, workers=0, preload=False,
                        api_keys_file=key_file, rate_limit="1000/minute")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client, keys


def _routes(routes: list[BaseRoute]) -> list[tuple[str, str]]:
    """Every (method, path) served, with path parameters filled in."""
    found = []
    for route in routes:
        if isinstance(route, Mount):  # static files: one real file of the folder
            found.append(("GET", f"{route.path}/{sorted(os.listdir(route.app.directory))[0]}"))  # type: ignore[attr-defined]
        elif isinstance(route, APIRoute | Route):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                found.append((method, re.sub(r"\{[^}]+\}", "0123456789abcdef", route.path)))
        elif (router := getattr(route, "original_router", None)) is not None:
            found.extend(_routes(router.routes))  # FastAPI >= 0.16x keeps included routers whole
        else:
            pytest.fail(f"a kind of route this test cannot enumerate: {route!r}")
    return found


def test_every_route_but_probes_and_docs_needs_a_valid_key(keyed: tuple[TestClient, Keys]) -> None:
    client, keys = keyed
    routes = _routes(client.app.routes)  # type: ignore[attr-defined]
    assert ("POST", "/v1/jobs") in routes and ("GET", "/v1/health") in routes  # the list really is the app's
    for method, path in routes:
        if path in OPEN or path.startswith(("/docs-assets/", "/static/")):
            assert client.request(method, path).status_code != 401, (method, path)
            continue
        for headers, code in [({}, "missing_api_key"), (bearer("bnlp_wrong"), "invalid_api_key"),
                              ({"X-API-Key": "bnlp_wrong"}, "invalid_api_key"),
                              (bearer(keys.revoked), "invalid_api_key"), ({"Authorization": "Basic eDp5"},
                                                                          "missing_api_key")]:
            response = client.request(method, path, headers=headers)
            error_of(response, 401, code)
            assert response.headers["www-authenticate"].startswith('Bearer realm="booknlp-api"'), (method, path)
        for headers in (bearer(keys.alice), {"X-API-Key": keys.alice}, bearer(keys.file_key)):
            assert client.request(method, path, headers=headers).status_code != 401, (method, path, headers)


def test_openapi_declares_both_ways_to_send_a_key(keyed: tuple[TestClient, Keys]) -> None:
    spec = keyed[0].get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer" and schemes["APIKeyHeader"]["name"] == "X-API-Key"
    assert "security" in spec["paths"]["/v1/jobs"]["post"] and "security" not in spec["paths"]["/v1/health"]["get"]


def test_another_key_cannot_see_fetch_list_or_cancel_a_job_and_an_admin_can(keyed: tuple[TestClient, Keys]) -> None:
    client, keys = keyed
    alice, bob, admin = bearer(keys.alice), bearer(keys.bob), bearer(keys.admin)
    created = client.post("/v1/jobs", json={"text": TEXT, "cache": False}, headers=alice)
    assert created.status_code == 202, created.text
    job = created.json()["id"]
    mine = client.post("/v1/jobs", json={"text": TEXT + " Bob's.", "cache": False}, headers=bob).json()["id"]

    for method, path in [("GET", f"/v1/jobs/{job}"), ("GET", f"/v1/jobs/{job}/result"),
                         ("GET", f"/v1/jobs/{job}/result?format=native"), ("DELETE", f"/v1/jobs/{job}")]:
        error_of(client.request(method, path, headers=bob), 404, "job_not_found")
    listed = client.get("/v1/jobs", headers=bob).json()
    assert [j["id"] for j in listed["jobs"]] == [mine] and listed["total"] == 1
    assert job not in {j["id"] for j in client.get("/v1/jobs?status=queued", headers=bob).json()["jobs"]}

    assert client.get(f"/v1/jobs/{job}", headers=alice).json()["status"] == "queued"
    error_of(client.get(f"/v1/jobs/{job}/result", headers=alice), 409, "job_not_finished")
    assert {job, mine} <= {j["id"] for j in client.get("/v1/jobs?limit=100", headers=admin).json()["jobs"]}
    assert client.get(f"/v1/jobs/{mine}", headers=admin).status_code == 200
    assert client.delete(f"/v1/jobs/{job}", headers=admin).json()["status"] == "cancelled"
    assert client.get(f"/v1/jobs/{job}", headers=alice).json()["status"] == "cancelled"


def test_idempotency_keys_belong_to_their_api_key(keyed: tuple[TestClient, Keys]) -> None:
    client, keys = keyed
    first = client.post("/v1/jobs", json={"text": TEXT, "cache": False},
                        headers={**bearer(keys.alice), "Idempotency-Key": "retry-7"}).json()["id"]
    other = client.post("/v1/jobs", json={"text": TEXT, "cache": False},
                        headers={**bearer(keys.bob), "Idempotency-Key": "retry-7"})
    assert other.status_code == 202 and other.json()["id"] != first
    assert "idempotent-replayed" not in other.headers
    again = client.post("/v1/jobs", json={"text": TEXT, "cache": False},
                        headers={**bearer(keys.alice), "Idempotency-Key": "retry-7"})
    assert again.json()["id"] == first and again.headers["idempotent-replayed"] == "true"


def test_over_the_request_rate_is_429_with_headers_until_the_window_passes(keyed: tuple[TestClient, Keys]) -> None:
    client, keys = keyed
    for _ in range(3):
        assert client.get("/v1/jobs", headers=bearer(keys.burst)).status_code == 200
    refused = client.get("/v1/jobs", headers=bearer(keys.burst))
    error = error_of(refused, 429, "rate_limited")
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 2 and error["details"]["quota"] == 3 and error["details"]["window_seconds"] == 2
    assert refused.headers["ratelimit-policy"] == '"requests";q=3;w=2'
    assert refused.headers["ratelimit"] == f'"requests";r=0;t={retry_after}'
    assert client.get("/v1/jobs", headers=bearer(keys.alice)).status_code == 200  # other keys are unaffected
    assert client.get("/v1/health", headers=bearer(keys.burst)).status_code == 200  # probes are never limited

    time.sleep(retry_after)  # the window itself is what is waited for
    deadline = time.monotonic() + 5
    while (status := client.get("/v1/jobs", headers=bearer(keys.burst)).status_code) == 429:
        assert time.monotonic() < deadline, "the key was still refused well after Retry-After"
        time.sleep(0.1)
    assert status == 200


def test_characters_per_day_and_jobs_at_once_are_per_key(keyed: tuple[TestClient, Keys]) -> None:
    client, keys = keyed
    small = bearer(keys.small)
    for text in ("A" * 50 + " one.", "B" * 50 + " two."):
        assert client.post("/v1/jobs", json={"text": text, "cache": False}, headers=small).status_code == 202
    busy = client.post("/v1/jobs", json={"text": "Three.", "cache": False}, headers=small)
    error = error_of(busy, 429, "too_many_active_jobs")
    assert error["details"] == {"active": 2, "limit": 2} and int(busy.headers["retry-after"]) >= 1

    queued = client.get("/v1/jobs?status=queued", headers=small).json()["jobs"]
    client.delete(f"/v1/jobs/{queued[0]['id']}", headers=small)
    over = client.post("/v1/jobs", json={"text": "C" * 60, "cache": False}, headers=small)  # 110 + 60 > 120
    error = error_of(over, 429, "rate_limited")
    assert over.headers["ratelimit-policy"] == '"chars";q=120;w=86400' and error["details"]["limit"] == "chars"
    assert client.post("/v1/jobs", json={"text": "Short.", "cache": False}, headers=small).status_code == 202
    assert client.post("/v1/jobs", json={"text": "C" * 60, "cache": False},
                       headers=bearer(keys.alice)).status_code == 202


def test_a_cached_result_reaches_another_key_only_as_a_new_job_of_theirs(
        tiny_models_dir: Path, tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "jobs.sqlite3")
    alice, bob = bearer(store.create("alice")), bearer(store.create("bob"))
    store.close()
    settings = Settings(models_dir=tiny_models_dir, model="tiny", data_dir=tmp_path, workers=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.app.state.runtime.jobs.start()  # type: ignore[attr-defined]
        body = {"text": TEXT, "pipeline": ["supersense"]}
        first = client.post("/v1/analyze", json=body, headers=alice)
        assert first.status_code == 200, first.text
        original = client.get("/v1/jobs", headers=alice).json()["jobs"][0]
        again = client.post("/v1/jobs", json=body, headers=alice).json()
        assert again["cached_from"] == original["id"]
        theirs = client.post("/v1/jobs", json=body, headers=bob).json()
        assert theirs["status"] == "succeeded" and theirs["id"] not in (original["id"], again["id"])
        assert theirs["cached_from"] is None and original["id"] not in str(theirs)
        assert client.get(f"/v1/jobs/{theirs['id']}/result", headers=bob).json() == first.json()
        error_of(client.get(f"/v1/jobs/{original['id']}", headers=bob), 404, "job_not_found")
