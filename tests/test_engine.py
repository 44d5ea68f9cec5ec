"""The engine on tiny synthetic models: pipelines, bad input, upstream failure modes, progress, cancel."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

import pytest

from booknlp_api.config import Settings
from booknlp_api.engine.errors import Cancelled, InvalidPipeline, InvalidText, ModelNotAvailable, StageFailed
from booknlp_api.engine.pipeline import PIPES, parse_pipeline
from booknlp_api.engine.progress import StageProgress
from booknlp_api.engine.service import NLPService
from tests.conftest import expected_device

TEXT = (Path(__file__).parent / "fixtures" / "texts" / "dialogue_pride_and_prejudice_ch2.txt").read_text(
    encoding="utf-8")[:2500]
QUOTES = "\n".join(f"“Yes,” said {name}." for name in ["Elizabeth", "Darcy", "Jane", "Bingley"] * 25)
"""100 quotes: the attribution stage runs them through BERT in four batches of up to 32."""


@pytest.mark.parametrize(("pipes", "message"), [
    ("quote", "quote requires entity"),
    ("coref,entity", "coref requires quote"),
    ("entity,sentiment", "unknown pipe(s) sentiment; valid pipes are entity, quote, supersense, event, coref"),
    ("", "the pipeline is empty"),
])
def test_invalid_pipelines_say_what_is_wrong(pipes: str, message: str) -> None:
    with pytest.raises(InvalidPipeline, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_pipeline(pipes)


def test_pipeline_components_follow_upstream_rules() -> None:
    assert parse_pipeline(None).names() == list(PIPES)
    assert parse_pipeline(["event"]).components == ("entity",)  # the tagger file holds the event head
    assert parse_pipeline("entity,quote").components == ("entity", "quote")
    assert parse_pipeline("supersense").components == ("entity",)


@pytest.mark.parametrize("text", ["", "   \n\t\r\n  "])
def test_empty_and_whitespace_text_are_refused_before_any_work(tiny_models_dir: Path, tmp_path: Path,
                                                               text: str) -> None:
    service = NLPService(Settings(models_dir=tiny_models_dir, model="tiny"))
    with pytest.raises(InvalidText, match="empty or only whitespace"):
        service.analyze(text, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert service.loaded_models() == {}


def test_unknown_model_lists_the_available_ones(tiny_service: NLPService, tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailable, match="available: tiny") as refused:
        tiny_service.analyze(TEXT, out_dir=tmp_path, model="big")
    assert refused.value.available == ["tiny"]


def test_entity_alone_loads_and_writes_only_what_it_needs(tiny_models_dir: Path, tmp_path: Path) -> None:
    service = NLPService(Settings(models_dir=tiny_models_dir, model="tiny"))
    analysis = service.analyze(TEXT, out_dir=tmp_path, pipeline=["entity"])
    assert service.loaded_models()["tiny"].loaded() == ("entity",)
    assert sorted(analysis.files) == ["entities", "tokens"]
    assert list(analysis.timings) == ["parse", "tagger", "quotes", "names", "gender", "output"]
    assert analysis.synthetic_models and analysis.device == expected_device().device and analysis.token_count > 400


def test_supersense_alone_works_where_upstream_would_crash(tiny_service: NLPService, tmp_path: Path) -> None:
    # Upstream never builds its tagger without "entity" and then fails on it; we run the tagger.
    analysis = tiny_service.analyze(TEXT, out_dir=tmp_path, pipeline="supersense")
    assert sorted(analysis.files) == ["supersense", "tokens"]
    assert len(analysis.files["supersense"].read_text(encoding="utf-8").splitlines()) > 10


def test_same_text_twice_gives_identical_files(tiny_service: NLPService, tmp_path: Path) -> None:
    first = tiny_service.analyze(TEXT, out_dir=tmp_path / "a")
    second = tiny_service.analyze(TEXT, out_dir=tmp_path / "b")
    assert {ext: p.read_bytes() for ext, p in first.files.items()} == \
        {ext: p.read_bytes() for ext, p in second.files.items()}


def test_sys_exit_inside_upstream_is_a_clean_stage_error(tiny_service: NLPService, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    coref = tiny_service.load("tiny").coref

    def gives_up(*args: object) -> None:
        print("problem!")  # upstream prints, then calls sys.exit(1)
        sys.exit(1)

    monkeypatch.setattr(coref, "tag", gives_up)
    with pytest.raises(StageFailed) as failed:
        tiny_service.analyze(TEXT, out_dir=tmp_path / "failed")
    assert failed.value.stage == "coref"
    assert "exit 1" in str(failed.value) and "problem!" in str(failed.value)
    monkeypatch.undo()
    assert tiny_service.analyze(TEXT, out_dir=tmp_path / "next", pipeline="entity").files  # still serving


def test_an_upstream_exception_names_its_stage(tiny_service: NLPService, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    quote = tiny_service.load("tiny").quote
    monkeypatch.setattr(quote, "tag", lambda *args: [][0])
    with pytest.raises(StageFailed, match="stage 'attribution' failed: IndexError"):
        tiny_service.analyze(TEXT, out_dir=tmp_path)


def test_progress_reports_every_stage_in_order(tiny_service: NLPService, tmp_path: Path) -> None:
    seen: list[StageProgress] = []
    analysis = tiny_service.analyze(TEXT, out_dir=tmp_path, progress=seen.append)
    stages = list(dict.fromkeys(step.stage for step in seen))
    assert stages == list(analysis.timings)
    for stage in stages:
        fractions = [step.fraction for step in seen if step.stage == stage]
        assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert all(step.elapsed >= 0 for step in seen)


def test_progress_moves_within_a_stage_batch_by_batch(tiny_service: NLPService, tmp_path: Path) -> None:
    seen: list[StageProgress] = []
    tiny_service.analyze(QUOTES, out_dir=tmp_path, pipeline="entity,quote", progress=seen.append)
    fractions = [step.fraction for step in seen if step.stage == "attribution"]
    # Four BERT batches of 32 quotes: reported before each (0, 1/4, 2/4, 3/4), then the stage's end.
    assert fractions == [0.0, 0.0, 0.25, 0.5, 0.75, 1.0]


def test_cancel_stops_at_the_next_batch_and_the_service_carries_on(tiny_service: NLPService,
                                                                    tmp_path: Path) -> None:
    cancel = threading.Event()
    seen: list[StageProgress] = []

    def progress(step: StageProgress) -> None:
        seen.append(step)
        if step.stage == "attribution" and step.fraction > 0:
            cancel.set()  # inside the stage, as its second batch starts

    with pytest.raises(Cancelled, match="cancelled during attribution"):
        tiny_service.analyze(QUOTES, out_dir=tmp_path / "cancelled", pipeline="entity,quote", progress=progress,
                             cancel=cancel)
    # The run stopped before the third batch, not at the stage's end.
    assert [step.fraction for step in seen if step.stage == "attribution"] == [0.0, 0.0, 0.25]
    assert tiny_service.analyze(TEXT, out_dir=tmp_path / "after", pipeline="entity").token_count > 0


def test_crlf_text_gives_the_same_files_as_lf(tiny_service: NLPService, tmp_path: Path) -> None:
    lf = tiny_service.analyze(TEXT, out_dir=tmp_path / "lf", pipeline="entity,quote")
    crlf = tiny_service.analyze(TEXT.replace("\n", "\r\n"), out_dir=tmp_path / "crlf", pipeline="entity,quote")
    assert [p.read_bytes() for p in lf.files.values()] == [p.read_bytes() for p in crlf.files.values()]


def test_book_id_must_be_a_safe_file_name(tiny_service: NLPService, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="book_id must be"):
        tiny_service.analyze(TEXT, out_dir=tmp_path, book_id="../escape")


def test_gpu_out_of_memory_is_a_clean_error_and_the_engine_survives(tiny_service: NLPService, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from booknlp_api.engine.errors import DeviceOutOfMemory

    def out_of_memory(*args: object, **kwargs: object) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(tiny_service.load("tiny").entity, "tag", out_of_memory)
    with pytest.raises(DeviceOutOfMemory, match="stage 'tagger' failed: the GPU ran out of memory"):
        tiny_service.analyze(TEXT, out_dir=tmp_path / "oom")
    monkeypatch.undo()
    assert tiny_service.analyze(TEXT, out_dir=tmp_path / "after", pipeline="entity").token_count > 0


def test_upstream_chatter_is_captured_for_the_running_thread_only(
        tiny_service: NLPService, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    entity = tiny_service.load("tiny").entity
    real_tag = entity.tag

    def chatty_tag(*args: object, **kwargs: object) -> object:
        # Inside the stage: upstream prints, and meanwhile another thread prints too.
        print("upstream chatter from the stage")
        other = threading.Thread(target=lambda: print("from another thread"))
        other.start()
        other.join()
        return real_tag(*args, **kwargs)

    monkeypatch.setattr(entity, "tag", chatty_tag)
    with caplog.at_level(logging.DEBUG, logger="booknlp_api.engine.service"):
        tiny_service.analyze(TEXT, out_dir=tmp_path, pipeline="entity")
    out = capsys.readouterr().out
    assert "from another thread" in out
    assert "upstream chatter from the stage" not in out
    assert any("booknlp (tagger): upstream chatter from the stage" in r.getMessage() for r in caplog.records)
