"""The memory bound: a book whose estimated peak exceeds a worker's memory is refused before any work."""

from __future__ import annotations

import ctypes
import os
import platform
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from booknlp_api.config import Settings
from booknlp_api.engine.memory import (
    BIG,
    FAST_COPY_PER_FILE_BYTE,
    SMALL,
    TooLargeForMemory,
    available_memory,
    count_tokens,
    estimate_bytes,
    profile_for,
    release_free_memory,
)
from booknlp_api.engine.precision import FastMode
from booknlp_api.engine.service import NLPService
from booknlp_api.jobs.records import Submission
from booknlp_api.jobs.service import JobService
from booknlp_api.models.manifest import read_manifest
from tests.conftest import AUTH, keys_file

TEXT = "“Hello,” said Emma, and Harriet smiled at her friend. " * 2000
"""About 28,000 tokens: a tiny-model run of it would take minutes, so a refusal is also fast."""


def _limit_below(text: str) -> int:
    return estimate_bytes(text, SMALL) - 1


def test_tokens_are_counted_like_spacy_counts_them_roughly() -> None:
    assert count_tokens("“Hello,” said Emma. Harriet's friend!") == 12


def test_the_estimate_grows_linearly_with_the_text_and_is_larger_for_big_models() -> None:
    one, two = estimate_bytes("word " * 1000, SMALL), estimate_bytes("word " * 2000, SMALL)
    assert two - one == 1000 * SMALL.per_token
    assert estimate_bytes("word " * 1000, BIG) > one


@pytest.mark.parametrize(("tokens", "measured_gib"), [(12_001, 3.59), (41_794, 5.92)])
def test_the_big_estimate_stays_above_the_peaks_measured_with_big_models(tokens: int, measured_gib: float) -> None:
    # long_book_memory / engine_vs_upstream --size big on CPU (docs/PERFORMANCE.md): the estimate must not undershoot
    assert estimate_bytes("", BIG, tokens) > measured_gib * 2**30


def test_the_big_slope_flattens_once_corefs_batch_is_full() -> None:
    assert BIG.steep_until is not None
    before = estimate_bytes("", BIG, BIG.steep_until) - estimate_bytes("", BIG, BIG.steep_until - 1000)
    after = estimate_bytes("", BIG, BIG.steep_until + 1000) - estimate_bytes("", BIG, BIG.steep_until)
    assert (before, after) == (1000 * BIG.per_token, 1000 * BIG.per_token_after)
    assert after < before


def test_the_profile_follows_the_bert_size_in_the_manifest(tiny_models_dir: Path) -> None:
    manifest = read_manifest(tiny_models_dir / "tiny")
    assert profile_for(manifest) == SMALL
    big = manifest.model_copy(update={"components": {
        "entity": "entities_google_bert_uncased_L-12_H-768_A-12-v1.0.model"}})
    assert profile_for(big) == BIG


@pytest.mark.parametrize(("files", "expected"), [
    ({"memory.max": "3221225472\n"}, 3 * 2**30),                                  # cgroup v2
    ({"memory.max": "max\n", "memory/memory.limit_in_bytes": "2147483648\n"}, 2 * 2**30),  # v1 under v2 "max"
    ({"memory/memory.limit_in_bytes": "9223372036854771712\n"}, None),            # v1 "unlimited"
    ({}, None),                                                                   # no cgroup files
])
def test_available_memory_reads_the_cgroup_limit_else_physical_memory(
        tmp_path: Path, files: dict[str, str], expected: int | None) -> None:
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content)
    physical = available_memory(tmp_path / "absent")
    assert physical > 2**28
    assert available_memory(tmp_path) == (expected if expected is not None else physical)


def test_the_engine_refuses_a_text_too_large_for_memory_before_any_stage(tiny_models_dir: Path,
                                                                        tmp_path: Path) -> None:
    engine = NLPService(Settings(models_dir=tiny_models_dir, model="tiny", worker_memory_bytes=_limit_below(TEXT)))
    stages: list[str] = []
    with pytest.raises(TooLargeForMemory) as refused:
        engine.analyze(TEXT, out_dir=tmp_path / "out", progress=lambda step: stages.append(step.stage))
    assert refused.value.code == "too_large_for_memory"
    assert "BOOKNLP_WORKER_MEMORY_BYTES" in str(refused.value)
    assert stages == [] and not (tmp_path / "out").exists()
    assert engine.loaded_models() == {} or not any(engine.loaded_models()["tiny"].loaded())


def test_fast_modes_own_coref_copy_counts_against_the_limit(tiny_models_dir: Path) -> None:
    """The shipped fast mode holds an int8 copy of the coref model on the CPU: a text that just fits in
    exact mode does not in fast mode; a fast mode that changes no model costs nothing more."""
    manifest = read_manifest(tiny_models_dir / "tiny")
    coref_bytes = (tiny_models_dir / "tiny" / manifest.components["coref"]).stat().st_size
    text = "Emma smiled at Harriet. " * 50
    just_fits = estimate_bytes(text, profile_for(manifest)) + int(FAST_COPY_PER_FILE_BYTE * coref_bytes) // 2
    settings = Settings(models_dir=tiny_models_dir, model="tiny", device="cpu", worker_memory_bytes=just_fits)
    engine = NLPService(settings, fast_mode=FastMode(parse_processes=2, int8_coref_cpu=True))
    engine.check_memory(text, precision="exact")
    with pytest.raises(TooLargeForMemory):
        engine.check_memory(text, precision="fast")
    NLPService(settings, fast_mode=FastMode(parse_processes=2)).check_memory(text, precision="fast")
    # the shipped mode and the configured default precision take the same path
    with pytest.raises(TooLargeForMemory):
        NLPService(settings.model_copy(update={"precision": "fast"})).check_memory(text)


def test_a_job_too_large_for_its_worker_fails_at_once_with_the_setting_named(tiny_models_dir: Path,
                                                                             tmp_path: Path) -> None:
    roomy = Settings(models_dir=tiny_models_dir, model="tiny", data_dir=tmp_path)
    submitter = JobService(roomy, NLPService(roomy))
    job, _ = submitter.submit(Submission(text=TEXT))
    cramped = roomy.model_copy(update={"worker_memory_bytes": _limit_below(TEXT)})
    jobs = JobService(cramped, NLPService(cramped))
    jobs.start()
    try:
        deadline = time.monotonic() + 60
        while (found := jobs.get(job.id)).status in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        jobs.stop()
    assert found.status == "failed" and found.attempts == 1
    assert found.error is not None and found.error.code == "too_large_for_memory"
    assert "BOOKNLP_WORKER_MEMORY_BYTES" in found.error.message


@pytest.fixture(scope="module")
def cramped_client(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from booknlp_api.api.app import create_app

    data_dir = tmp_path_factory.mktemp("cramped-data")
    settings = Settings(models_dir=tiny_models_dir, model="tiny", workers=0, worker_memory_bytes=_limit_below(TEXT),
                        data_dir=data_dir, api_keys_file=keys_file(data_dir))
    with TestClient(create_app(settings), raise_server_exceptions=False, headers=AUTH) as client:
        yield client


def test_the_api_refuses_a_job_too_large_for_memory_at_submission(cramped_client: TestClient) -> None:
    response = cramped_client.post("/v1/jobs", json={"text": TEXT})
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "too_large_for_memory"
    assert error["details"]["setting"] == "BOOKNLP_WORKER_MEMORY_BYTES"
    assert error["details"]["estimate_bytes"] > error["details"]["limit_bytes"] == _limit_below(TEXT)
    assert cramped_client.get("/v1/jobs").json()["total"] == 0


def test_the_api_accepts_a_text_that_fits(cramped_client: TestClient) -> None:
    response = cramped_client.post("/v1/jobs", json={"text": TEXT[: len(TEXT) // 2]})
    assert response.status_code == 202, response.text


def _rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's; elsewhere it reports False")
def test_freed_heap_pages_go_back_to_the_system() -> None:
    # Freeing an mmapped block raises glibc's mmap threshold, so the next 1 MiB blocks land in the heap,
    # as a stage's tensors do; one block kept at the end stops free() from trimming the heap top itself.
    big = ctypes.create_string_buffer(16 * 2**20)
    del big
    blocks = [ctypes.create_string_buffer(2**20) for _ in range(200)]
    kept = blocks.pop()
    before_free = _rss()
    del blocks
    held = _rss()
    assert release_free_memory() is True
    released = held - _rss()
    assert released > 100 * 2**20, (before_free, held, released)
    assert kept.raw[:1] == b"\0"
