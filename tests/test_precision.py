"""Fast mode in the engine: its own components, loaded on first use, never disturbing exact runs."""

from __future__ import annotations

import filecmp
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from transformers import BertConfig, BertModel

from booknlp_api.config import Settings
from booknlp_api.engine import precision as precision_module
from booknlp_api.engine.agreement import compare_folders
from booknlp_api.engine.precision import FAST, TAGGER_LSTMS, FastMode, make_fast
from booknlp_api.engine.service import NLPService

CHAPTER = (Path(__file__).parent / "fixtures" / "texts" / "dialogue_pride_and_prejudice_ch2.txt").read_text(
    encoding="utf-8")[:4000]


def _same_files(one: Path, other: Path) -> bool:
    names = sorted(p.name for p in one.iterdir())
    return names == sorted(p.name for p in other.iterdir()) and all(
        filecmp.cmp(one / name, other / name, shallow=False) for name in names)


def test_fast_components_are_separate_and_exact_runs_stay_byte_identical(tiny_models_dir: Path,
                                                                           tmp_path: Path) -> None:
    service = NLPService(Settings(models_dir=tiny_models_dir, model="tiny"), fast_mode=FastMode(int8_cpu=True))
    before = service.analyze(CHAPTER, out_dir=tmp_path / "exact-1")
    assert before.precision == "exact"
    fast = service.analyze(CHAPTER, out_dir=tmp_path / "fast", precision="fast")
    assert fast.precision == "fast"
    after = service.analyze(CHAPTER, out_dir=tmp_path / "exact-2", precision="exact")
    assert _same_files(before.folder, after.folder)

    exact_parts, fast_parts = service.load(precision="exact"), service.load(precision="fast")
    assert exact_parts is not fast_parts and exact_parts.entity is not fast_parts.entity
    quantized = torch.ao.nn.quantized.dynamic.Linear
    for component in ("entity", "quote", "coref"):
        assert not any(isinstance(m, quantized) for m in getattr(exact_parts, component).model.bert.modules())
        assert any(isinstance(m, quantized) for m in getattr(fast_parts, component).model.bert.modules())
    # The fast run really computed something else (int8 moves the tiny models' scores), yet stays comparable.
    found = compare_folders(before.folder, fast.folder, "book")
    assert set(found.values()) == {"entities_f1", "supersenses_f1", "events_f1", "quote_speakers",
                                   "coref_b_cubed_f1", "characters_f1"}
    assert service.loaded_models()["tiny"] is exact_parts


def test_fast_without_an_option_for_the_device_shares_the_exact_components(tiny_models_dir: Path) -> None:
    service = NLPService(Settings(models_dir=tiny_models_dir, model="tiny", device="cpu"),
                         fast_mode=FastMode(half_cuda=torch.float16))
    assert service.load(pipeline="entity", precision="fast") is service.load(pipeline="entity", precision="exact")


def test_the_default_precision_comes_from_the_settings(tiny_models_dir: Path, tmp_path: Path) -> None:
    service = NLPService(Settings(models_dir=tiny_models_dir, model="tiny", precision="fast"),
                         fast_mode=FastMode(int8_cpu=True))
    analysis = service.analyze("Emma smiled at Harriet.", out_dir=tmp_path, pipeline="entity")
    assert analysis.precision == "fast"
    assert service.loaded_models()["tiny"] is service.load(pipeline="entity", precision="fast")


def _tiny_component() -> Any:
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32)
    lstms = {name: torch.nn.LSTM(4, 3, bidirectional=True, batch_first=True) for name in TAGGER_LSTMS}
    return SimpleNamespace(model=SimpleNamespace(bert=BertModel(config).eval(), **lstms))


def test_on_cuda_fast_mode_autocasts_the_bert_and_hands_float32_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA branch on a CPU machine: the device is only a name here, autocast is recorded."""
    entered: list[tuple[str, torch.dtype]] = []
    real_autocast = torch.autocast

    def recording_autocast(device_type: str, dtype: torch.dtype) -> Any:
        entered.append((device_type, dtype))
        return real_autocast("cpu", dtype=torch.bfloat16)  # a real half-precision region, on this machine

    monkeypatch.setattr(precision_module.torch, "autocast", recording_autocast)
    built = _tiny_component()
    make_fast("coref", built, torch.device("cuda", 0), FastMode(int8_cpu=True, half_cuda=torch.float16))
    assert not any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in built.model.bert.modules())
    ids = torch.randint(0, 50, (2, 6))
    sequence, pooled, hidden = built.model.bert(ids, output_hidden_states=True, return_dict=False)
    assert entered == [("cuda", torch.float16)]
    assert sequence.dtype == pooled.dtype == torch.float32 and all(h.dtype == torch.float32 for h in hidden)
    as_dict = built.model.bert(ids, output_hidden_states=True)
    assert as_dict["last_hidden_state"].dtype == torch.float32


def test_on_cpu_the_cuda_options_do_nothing_and_int8_quantizes() -> None:
    built = _tiny_component()
    forward = built.model.bert.forward
    make_fast("coref", built, torch.device("cpu"), FastMode(half_cuda=torch.float16))
    assert built.model.bert.forward == forward
    make_fast("coref", built, torch.device("cpu"), FastMode(int8_cpu=True))
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in built.model.bert.modules())


@pytest.mark.parametrize("bf16", [False, True])
def test_fast_modes_say_what_they_change_per_device(monkeypatch: pytest.MonkeyPatch, bf16: bool) -> None:
    # The shipped fast mode splits the parse (agreement 100% on every benchmark novel) and, on the CPU,
    # shares the tagger's batches over two processes (the same predictions) and runs the BERTs and two of the
    # tagger's LSTMs in bfloat16 where the CPU computes it (lowest agreement 98.95%), else quantises the coref BERT
    # (lowest agreement 99.4%).
    monkeypatch.setattr(precision_module, "cpu_computes_bf16", lambda: bf16)
    split = "spaCy parse split at paragraph breaks over up to 2 processes"
    by_length = "quote windows scored in batches of similar length"
    assert FAST.describe(torch.device("cuda", 0)) == [split, by_length]
    shared = ["tagger batches shared over up to 2 single-thread processes",
              "speaker batches shared over up to 2 single-thread processes", by_length]
    model = (["BERTs run under bfloat16 autocast", "the tagger's event, supersense LSTMs run under bfloat16 autocast"]
             if bf16 else ["int8 dynamic quantisation of the coref BERT's linear layers"])
    assert FAST.describe(torch.device("cpu")) == [split, *shared, *model]
    assert FAST.changes_models(torch.device("cpu")) and not FAST.changes_models(torch.device("cuda", 0))
    assert [c for c in ("entity", "quote", "coref") if FAST.changes_component(c, torch.device("cpu"))] == \
        (["entity", "quote", "coref"] if bf16 else ["coref"])
    both = FastMode(int8_cpu=True, half_cuda=torch.float16)
    assert both.describe(torch.device("cuda", 0)) == ["BERTs run under float16 autocast"]
    assert both.describe(torch.device("cpu")) == ["int8 dynamic quantisation of the BERTs' linear layers"]


def test_coref_int8_quantizes_the_coref_bert_only_and_shares_the_rest(tiny_models_dir: Path,
                                                                        tmp_path: Path) -> None:
    mode = FastMode(int8_coref_cpu=True)
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert mode.changes_models(cpu) and not mode.changes_models(cuda)
    assert [mode.changes_component(c, cpu) for c in ("entity", "quote", "coref")] == [False, False, True]
    assert mode.describe(cpu) == ["int8 dynamic quantisation of the coref BERT's linear layers"]
    assert mode.describe(cuda) == []
    service = NLPService(Settings(models_dir=tiny_models_dir, model="tiny"), fast_mode=mode)
    fast = service.analyze(CHAPTER, out_dir=tmp_path / "fast", precision="fast")
    exact_parts, fast_parts = service.load(precision="exact"), service.load(precision="fast")
    assert fast.precision == "fast" and exact_parts is not fast_parts
    # one instance of what fast mode does not change: the tagger, name clustering, the speaker model
    assert fast_parts.entity is exact_parts.entity and fast_parts.names is exact_parts.names
    assert fast_parts.quote is exact_parts.quote and fast_parts.coref is not exact_parts.coref
    quantized = torch.ao.nn.quantized.dynamic.Linear
    for component, expected in (("entity", False), ("quote", False), ("coref", True)):
        assert any(isinstance(m, quantized) for m in getattr(fast_parts, component).model.bert.modules()) \
            == expected, component
    assert not any(isinstance(m, quantized) for m in exact_parts.coref.model.bert.modules())
    exact = service.analyze(CHAPTER, out_dir=tmp_path / "exact")
    assert _same_files(exact.folder, service.analyze(CHAPTER, out_dir=tmp_path / "again").folder)
    built = _tiny_component()
    make_fast("entity", built, cpu, mode)
    assert not any(isinstance(m, quantized) for m in built.model.bert.modules())


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_the_cpu_only_where_the_cpu_computes_it(monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    monkeypatch.setattr(precision_module, "cpu_computes_bf16", lambda: native)
    lstms = ("flat_lstm", "supersense_lstm1")
    mode = FastMode(int8_coref_cpu=True, bf16_cpu=True, bf16_lstms_cpu=lstms)
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert mode.half(cuda) is None and mode.describe(cuda) == [] and mode.lstms_in_bf16(cuda) == ()
    assert mode.lstms_in_bf16(cpu) == (lstms if native else ())
    if native:
        # bfloat16 covers the three BERTs; the int8 coref BERT is the fallback for CPUs without it
        assert mode.half(cpu) == torch.bfloat16 and not mode.quantises("coref", cpu)
        assert mode.describe(cpu) == ["BERTs run under bfloat16 autocast",
                                      "the tagger's event, supersense LSTMs run under bfloat16 autocast"]
        assert all(mode.changes_component(c, cpu) for c in ("entity", "quote", "coref"))
    else:
        assert mode.half(cpu) is None and mode.quantises("coref", cpu)
        assert mode.describe(cpu) == ["int8 dynamic quantisation of the coref BERT's linear layers"]
        assert [mode.changes_component(c, cpu) for c in ("entity", "quote", "coref")] == [False, False, True]
    built = _tiny_component()
    make_fast("entity", built, cpu, mode)
    assert ("forward" in vars(built.model.bert)) == native  # the autocast wrapper, or upstream's forward
    assert [name for name in TAGGER_LSTMS if "forward" in vars(getattr(built.model, name))] == \
        (list(lstms) if native else [])
    built = _tiny_component()
    make_fast("quote", built, cpu, mode)  # the LSTMs are the tagger's (entity) only
    assert not any("forward" in vars(getattr(built.model, name)) for name in TAGGER_LSTMS)
    assert FastMode(bf16_lstms_cpu=lstms).lstms_in_bf16(cpu) == ()  # only beside the BERTs' bfloat16
    # the explicit measuring switch applies whatever the CPU
    assert FastMode(half_cpu=torch.float16, bf16_cpu=True).half(cpu) == torch.float16


def test_cpu_computes_bf16_is_onednns_answer() -> None:
    assert precision_module.cpu_computes_bf16() == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def test_a_bf16_fast_run_autocasts_the_berts_and_keeps_exact_untouched(tiny_models_dir: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Autocast runs on any CPU (emulated where not native): the wiring is tested everywhere."""
    monkeypatch.setattr(precision_module, "cpu_computes_bf16", lambda: True)
    service = NLPService(Settings(models_dir=tiny_models_dir, model="tiny"),
                         fast_mode=FastMode(bf16_cpu=True, bf16_lstms_cpu=("flat_lstm",)))
    before = service.analyze(CHAPTER, out_dir=tmp_path / "exact-1")
    seen: list[torch.dtype] = []
    fast_parts = service.load(precision="fast")
    hook = fast_parts.entity.model.bert.encoder.layer[0].intermediate.dense.register_forward_hook(
        lambda _m, _args, out: seen.append(out.dtype))
    fast = service.analyze(CHAPTER, out_dir=tmp_path / "fast", precision="fast")
    hook.remove()
    assert fast.precision == "fast" and seen and set(seen) == {torch.bfloat16}
    # the tagger's LSTMs: bfloat16 arithmetic, float32 out; exact's LSTM untouched
    exact_tagger, fast_tagger = service.load(precision="exact").entity.model, fast_parts.entity.model
    exact_lstm, fast_lstm = exact_tagger.flat_lstm, fast_tagger.flat_lstm
    assert exact_lstm is not fast_lstm and "forward" not in vars(fast_tagger.lstm1)
    words = torch.randn(2, 7, fast_lstm.input_size)
    with torch.inference_mode():
        out, (hidden, _cell) = fast_lstm(words)
        float32 = exact_lstm(words)[0]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bfloat16 = exact_lstm(words)[0]
    assert out.dtype == hidden.dtype == torch.float32 and bfloat16.dtype == torch.bfloat16
    assert torch.equal(out, bfloat16.float()) and not torch.equal(out, float32)
    after = service.analyze(CHAPTER, out_dir=tmp_path / "exact-2")
    assert _same_files(before.folder, after.folder)
    found = compare_folders(before.folder, fast.folder, "book")
    assert min(found.values().values()) > 0.5  # comparable output, not garbage (tiny random models: no finer bound)


def test_int8_quantisation_says_nothing_to_the_user() -> None:
    """torch's notices that eager-mode int8 moves to torchao would reach a worker's terminal and logs at every
    fast-mode load; on a CPU with native bfloat16 the CLI test never quantises, so this checks it everywhere."""
    built = _tiny_component()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_fast("coref", built, torch.device("cpu"), FastMode(int8_coref_cpu=True))
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in built.model.bert.modules())
    assert [str(w.message) for w in caught] == []
