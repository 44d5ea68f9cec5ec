"""Batches shared with forked children (``engine/forked_batches.py``): fast mode's tagger and speaker scoring over
two processes."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from booknlp_api.config import Settings
from booknlp_api.engine import forked_batches, speaker_scores_forked
from booknlp_api.engine.entity_tag import chunk, wordnet_batches
from booknlp_api.engine.forked_batches import run_batches, shares
from booknlp_api.engine.get_batches import get_batches
from booknlp_api.engine.precision import FAST, FastMode
from booknlp_api.engine.progress import RunTracker
from booknlp_api.engine.replacements import install
from booknlp_api.engine.service import NLPService
from booknlp_api.engine.speaker_scores_forked import scores_shared

FIXTURES = Path(__file__).parent / "fixtures" / "texts"


@given(costs=st.lists(st.integers(1, 10_000), max_size=40), processes=st.integers(1, 4))
def test_shares_cover_every_batch_once_in_order_and_about_evenly(costs: list[int], processes: int) -> None:
    found = shares(costs, processes)
    assert len(found) == processes
    assert sorted(b for share in found for b in share) == list(range(len(costs)))
    assert all(share == sorted(share) for share in found)
    loads = [sum(costs[b] for b in share) for share in found]
    # greedy, costliest first: no process ends more than one batch above another
    assert max(loads) - min(loads) <= max(costs, default=0)


@pytest.mark.parametrize("processes", [1, 2, 3])
def test_results_come_back_in_batch_order_computed_across_processes(processes: int) -> None:
    threads = torch.get_num_threads()

    def compute(b: int) -> tuple[int, int, int]:
        return b, os.getpid(), torch.get_num_threads()

    found = list(run_batches(compute, [5, 1, 9, 3, 7, 2], processes))
    assert [b for b, _, _ in found] == list(range(6))
    pids = {pid for _, pid, _ in found}
    # this process runs its share; the pool's children the rest (one child may take two quick shares)
    assert os.getpid() in pids and (len(pids) > 1) == (processes > 1)
    if processes > 1:
        # every process ran its share on one torch thread, and this process got its threads back
        assert {n for _, _, n in found} == {1}
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize("costs", [[32, 5], [100, 10, 10, 10]])
def test_lopsided_shares_are_computed_here_one_after_another(costs: list[int]) -> None:
    """One process holding most of the work on one thread would finish after this process on all its threads."""
    threads = torch.get_num_threads()
    found = run_batches(lambda b: (b, os.getpid(), torch.get_num_threads()), costs, 2)
    assert list(found) == [(b, os.getpid(), threads) for b in range(len(costs))]


def test_one_batch_is_computed_here_when_read() -> None:
    computed: list[int] = []
    found = run_batches(lambda b: computed.append(b) or b, [10], 4)
    assert computed == []
    assert list(found) == [0] and computed == [0]


def test_a_childs_error_reaches_the_caller_and_the_threads_come_back() -> None:
    threads = torch.get_num_threads()
    mine = os.getpid()

    def compute(b: int) -> int:
        if os.getpid() != mine:
            raise ValueError(f"batch {b} failed in the child")
        return b

    with pytest.raises(ValueError, match="failed in the child"):
        list(run_batches(compute, [1, 1, 1, 1], 2))
    assert torch.get_num_threads() == threads


def test_a_forked_child_reports_no_progress(tmp_path: Path) -> None:
    """A run's tracker writes where its process says (the job store); a child's copy must stay silent."""
    log = tmp_path / "reports"
    tracker = RunTracker(lambda progress: log.open("a").write(f"{os.getpid()}\n"), None)
    tracker.start("tagger")
    tracker.expect_batches(4)

    def compute(b: int) -> int:
        tracker.batch()
        return b

    assert list(run_batches(compute, [1, 1, 1, 1], 2)) == [0, 1, 2, 3]
    reporters = set(log.read_text().split())
    assert reporters == {str(os.getpid())}
    assert len(log.read_text().split()) == 1 + 2  # start, then this process's two batches


@pytest.fixture(scope="module")
def tagger(tiny_service: NLPService) -> Any:
    built = copy.deepcopy(tiny_service.load("tiny", "entity,supersense,event").entity)
    install("entity", built)
    return built


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), size=st.integers(1, 3), processes=st.integers(2, 3))
def test_the_tagger_over_processes_predicts_what_it_predicts_alone(tagger: Any, tiny_service: NLPService,
                                                                   seed: int, size: int, processes: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for crf in (tagger.model.crf, tagger.model.supersense_crf):
            crf.transitions.copy_(torch.randn(crf.transitions.shape, generator=generator) * 5.0)
    text = (FIXTURES / "dialogue_pride_and_prejudice_ch2.txt").read_text(encoding="utf-8")
    model = tagger.model
    sentences, o_sentences = chunk(tiny_service._spacy_pipeline().tag(text), model.tokenizer.tokenize)
    # small batches (upstream takes 32 chunks in the first): several batches out of one chapter
    batches = get_batches(model.tokenizer.convert_tokens_to_ids, sentences, 32,
                          sizes=lambda counts, _: [min(size, len(counts) - i) for i in range(0, len(counts), size)])
    assert len(batches.data) >= 3
    args = (wordnet_batches(tagger.wns, o_sentences, batches), *batches.upstream()[:6])
    alone = model.tag_all(*args)
    shared = model.tag_all(*args, processes=processes)
    assert [list(d.items()) for part in shared for d in part] == [list(d.items()) for part in alone for d in part]


def test_fast_mode_shares_batches_on_the_cpu_up_to_the_workers_threads(tiny_models_dir: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    service = NLPService(Settings(models_dir=tiny_models_dir, model="tiny"), fast_mode=FastMode(tag_processes=4))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert (service._processes("fast", 4), service._processes("exact", 4)) == (2, 1)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert service._processes("fast", 4) == 1
    monkeypatch.setattr(service, "device", torch.device("cuda", 0))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    assert service._processes("fast", 4) == 1  # one GPU runs the batches one after another
    assert FAST.tag_processes == FAST.quote_processes == 2
    described = FAST.describe(torch.device("cpu"))
    assert "tagger batches shared over up to 2 single-thread processes" in described
    assert "speaker batches shared over up to 2 single-thread processes" in described


class SpeakerStandIn:
    """What ``scores_shared`` touches on a ``BERTSpeakerID``: batches built, then scored one by one."""

    def get_batches(self, widths: list[int]) -> tuple[list[dict[str, torch.Tensor]], list[int], list[int], list[int]]:
        inputs = [{"toks": torch.full((2, width), width)} for width in widths]
        return inputs, widths, widths, widths

    def forward(self, batch_x: dict[str, torch.Tensor], width: int) -> torch.Tensor:
        return torch.tensor([float(batch_x["toks"].sum()), width, os.getpid(), torch.get_num_threads()])


def test_speaker_scores_shared_come_back_in_upstreams_order_from_both_processes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    model = SpeakerStandIn()
    widths = [30, 5, 12, 40, 7]
    monkeypatch.setattr(speaker_scores_forked, "LEAST_WINDOWS_SHARED", 10)  # these 5 batches of 2
    with scores_shared(model, 2):
        inputs, matrices, _, _ = model.get_batches(widths)
        scores = [model.forward(x, m) for x, m in zip(inputs, matrices, strict=True)]
    assert [(s[0].item(), s[1].item()) for s in scores] == [(2.0 * w * w, w) for w in widths]
    pids = {int(s[2].item()) for s in scores}
    assert os.getpid() in pids and len(pids) == 2  # this process and a child
    assert {s[3].item() for s in scores} == {1.0}  # each on one torch thread
    assert vars(model) == {}  # upstream's methods again
    with scores_shared(model, 2):
        inputs, matrices, _, _ = model.get_batches(widths)
        with pytest.raises(RuntimeError, match="out of order"):
            model.forward(inputs[1], matrices[1])
    with scores_shared(model, 1):
        assert vars(model) == {}  # one process: nothing changes


def test_a_short_texts_speaker_windows_are_scored_here() -> None:
    """Forking a loaded worker costs more than it saves on fewer than ``LEAST_WINDOWS_SHARED`` windows."""
    model = SpeakerStandIn()
    widths = [30, 31, 29, 30]  # 4 even batches of 2 windows: shared, were there enough of them
    assert 2 * len(widths) < speaker_scores_forked.LEAST_WINDOWS_SHARED
    with scores_shared(model, 2):
        inputs, matrices, _, _ = model.get_batches(widths)
        scores = [model.forward(x, m) for x, m in zip(inputs, matrices, strict=True)]
    assert {int(s[2].item()) for s in scores} == {os.getpid()}


def test_fast_mode_attribution_over_processes_writes_exacts_files(tiny_models_dir: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Speaker batches over two processes change no model: fast mode with only this option is exact mode."""
    shared: list[int] = []
    real = forked_batches._run_forked

    def spy(compute: Any, costs: list[int], processes: int) -> Any:
        shared.append(processes)
        return real(compute, costs, processes)

    monkeypatch.setattr(forked_batches, "_run_forked", spy)
    monkeypatch.setattr(forked_batches, "MOST_SHARE", 1.0)  # this chapter's 2 batches are lopsided (32 + 2)
    monkeypatch.setattr(speaker_scores_forked, "LEAST_WINDOWS_SHARED", 2)  # and hold 34 windows
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    text = (FIXTURES / "dialogue_pride_and_prejudice_ch2.txt").read_text(encoding="utf-8")
    service = NLPService(Settings(models_dir=tiny_models_dir, model="tiny"), fast_mode=FastMode(quote_processes=2))
    exact = service.analyze(text, out_dir=tmp_path / "exact")
    assert shared == []  # exact mode scores in upstream's loop
    fast = service.analyze(text, out_dir=tmp_path / "fast", precision="fast")
    assert shared == [2]  # two processes for at least two batches of quote windows
    for name, path in exact.files.items():
        assert path.read_bytes() == fast.files[name].read_bytes(), name

