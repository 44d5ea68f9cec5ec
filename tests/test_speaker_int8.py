"""Fast mode's int8 speaker scores with close decisions rechecked in float32 (``engine/speaker_int8.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from booknlp_api.config import Settings
from booknlp_api.engine.precision import FAST, FastMode
from booknlp_api.engine.progress import StageProgress
from booknlp_api.engine.service import NLPService
from booknlp_api.engine.speaker_forward import SpeakerForward
from booknlp_api.engine.speaker_int8 import RecheckedSpeakerForward, close_quotes, quantized_scores
from tests.test_engine import QUOTES
from tests.test_speaker_forward import CANDIDATES, StandIn, batches

FIXTURES = Path(__file__).parent / "fixtures" / "texts"


def test_close_quotes_compare_the_best_two_real_candidates_only() -> None:
    scores = torch.tensor([[0.50, 0.48, 0.10] + [9.0] * 7,  # the padded rows' score is never a candidate
                           [0.50, 0.10, 0.45] + [0.0] * 7,
                           [0.50] + [0.499] * 9,  # one candidate: nothing to decide
                           [0.10, 0.30, 0.20, 0.295] + [0.0] * 6]).unsqueeze(2)
    candidates = torch.tensor([3, 3, 1, 4])
    assert close_quotes(scores, candidates, 0.03).tolist() == [True, False, False, True]
    assert close_quotes(scores, candidates, 0.01).tolist() == [False, False, False, True]
    assert close_quotes(scores, candidates, 0.0).tolist() == [False, False, False, False]


@pytest.fixture(scope="module")
def model() -> StandIn:
    return StandIn(3, seed=7)


def _with_counts(batch_m: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``SpeakerBatches``' count of real candidates: the rows the generated matrices fill."""
    return {**batch_m, "candidates": (batch_m["cands"] != 0).any(dim=2).sum(dim=1)}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(batch=batches(), margin=st.sampled_from([0.0, 0.02, 0.5, float("inf")]))
def test_each_window_gets_int8_scores_or_float32_ones_by_its_margin(model: StandIn, batch: tuple[Any, ...],
                                                                    margin: float) -> None:
    _, batch_x, batch_m = batch
    batch_m = _with_counts(batch_m)
    exact = SpeakerForward(model)
    rechecked = RecheckedSpeakerForward(model, exact, margin)
    with torch.no_grad():
        int8 = rechecked.int8(batch_x, batch_m)
        found = rechecked(batch_x, batch_m)
        close = close_quotes(int8, batch_m["candidates"], margin)
        assert rechecked.windows == len(close) and rechecked.rechecked == int(close.sum())
        for row in range(len(close)):
            if close[row]:
                # scored again alone, cut to its own length: float32, as exact mode scores it
                length = int(batch_x["mask"][row].sum())
                alone = exact({key: value[row:row + 1, :length] for key, value in batch_x.items()},
                              {key: batch_m[key][row:row + 1, :, :length] for key in ("cands", "quote")})
                torch.testing.assert_close(found[row], alone[0], rtol=1e-5, atol=1e-6)
            else:
                assert torch.equal(found[row], int8[row])
    # int8 really computes something else: its copy's linear layers are quantised, the model's are not
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in rechecked.int8.model.bert.modules())
    assert not any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in model.bert.modules())
    assert rechecked.int8.model.bert.embeddings is model.bert.embeddings  # shared, not copied


def test_a_wide_margin_gives_exact_decisions_and_none_gives_int8s(model: StandIn) -> None:
    generator = torch.Generator().manual_seed(3)
    size, width = 24, 60
    batch_x = {"toks": torch.randint(1, 300, (size, width), generator=generator),
               "mask": torch.ones(size, width, dtype=torch.long)}
    cands = torch.zeros(size, CANDIDATES, width)
    for row in range(size):
        for c_idx in range(CANDIDATES):
            cands[row, c_idx, 2 + 5 * c_idx] = 1.
    quote = torch.zeros(size, CANDIDATES, width)
    quote[:, :, 55] = 1.
    batch_m = _with_counts({"cands": cands, "quote": quote})
    with torch.no_grad():
        exact = SpeakerForward(model)(batch_x, batch_m)
        int8 = quantized_scores(model)(batch_x, batch_m)
        assert not torch.equal(exact, int8)
        everything = RecheckedSpeakerForward(model, SpeakerForward(model), float("inf"))(batch_x, batch_m)
        assert torch.equal(everything.argmax(dim=1), exact.argmax(dim=1))
        nothing = RecheckedSpeakerForward(model, SpeakerForward(model), 0.0)(batch_x, batch_m)
        assert torch.equal(nothing, int8)


def test_fast_mode_rechecks_quotes_with_its_own_speaker_component(tiny_models_dir: Path, tmp_path: Path) -> None:
    mode = FastMode(int8_quote_cpu=True)
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert mode.rechecks_quotes(cpu) and not mode.rechecks_quotes(cuda)
    assert [mode.changes_component(c, cpu) for c in ("entity", "quote", "coref")] == [False, True, False]
    assert not mode.quantises("quote", cpu) and mode.describe(cuda) == []
    assert "close decisions scored again in float32" in mode.describe(cpu)[0]
    assert not FastMode(int8_cpu=True, int8_quote_cpu=True).rechecks_quotes(cpu)  # all int8 already
    service = NLPService(Settings(models_dir=tiny_models_dir, model="tiny"), fast_mode=mode)
    text = (FIXTURES / "dialogue_pride_and_prejudice_ch2.txt").read_text(encoding="utf-8")[:4000]
    fast = service.analyze(text, out_dir=tmp_path / "fast", precision="fast")
    exact_parts, fast_parts = service.load(precision="exact"), service.load(precision="fast")
    assert fast.precision == "fast" and fast_parts.entity is exact_parts.entity
    forward = fast_parts.quote.model.forward
    assert isinstance(forward, RecheckedSpeakerForward) and forward.windows > 0
    assert not isinstance(exact_parts.quote.model.forward, RecheckedSpeakerForward)
    assert FAST.rechecks_quotes(cpu) == FAST.int8_quote_cpu


@pytest.mark.parametrize("margin", [0.0, float("inf")])
def test_progress_counts_each_attribution_batch_once_in_fast_mode(tiny_models_dir: Path, tmp_path: Path,
                                                                  margin: float) -> None:
    """Every batch goes through the int8 BERT once; a recheck through the float32 one is not another batch."""
    service = NLPService(Settings(models_dir=tiny_models_dir, model="tiny"),
                         fast_mode=FastMode(int8_quote_cpu=True))
    recheck = service.load(pipeline="entity,quote", precision="fast").quote.model.forward
    recheck.margin = margin  # none rechecked, or every quote of more than one candidate
    seen: list[StageProgress] = []
    service.analyze(QUOTES, out_dir=tmp_path, pipeline="entity,quote", precision="fast", progress=seen.append)
    assert (recheck.rechecked > 0) == (margin > 0)
    # four batches of 32 quotes: reported before each (0, 1/4, 2/4, 3/4), then the stage's end
    assert [step.fraction for step in seen if step.stage == "attribution"] == [0.0, 0.0, 0.25, 0.5, 0.75, 1.0]
