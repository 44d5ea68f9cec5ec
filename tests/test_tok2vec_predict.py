"""Windowed tok2vec: the same vectors as spaCy's whole-Doc pass, bit for bit, on every benchmark novel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import spacy

from booknlp_api.config import resolve_spacy_model
from booknlp_api.engine import tok2vec_predict
from booknlp_api.models.bert import import_upstream

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ROOT / "benchmarks" / "texts" if any((ROOT / "benchmarks" / "texts").glob("*.txt")) \
    else ROOT.parent / "shared" / "data" / "texts"
NOVELS = sorted(TEXTS.glob("*.txt"))


@pytest.fixture(scope="module")
def nlp() -> Any:
    loaded = spacy.load(resolve_spacy_model(None), disable=["ner"])
    loaded.max_length = 10_000_000
    return loaded


def _excerpt(novel: Path) -> str:
    """About 2,500 tokens from inside the novel, with its dialogue, paragraphs and line breaks."""
    return novel.read_text(encoding="utf-8-sig")[20_000:32_000]


def test_the_benchmark_novels_are_there() -> None:
    assert len(NOVELS) >= 4


@pytest.mark.parametrize("novel", NOVELS, ids=lambda path: path.stem)
@pytest.mark.parametrize("window", [50, 600])
def test_windowed_vectors_are_bit_identical_to_the_whole_doc(nlp: Any, novel: Path, window: int) -> None:
    component = nlp.get_pipe("tok2vec")
    context = tok2vec_predict.receptive_field(dict(nlp.config["components"]["tok2vec"]))
    assert context == 4
    doc = nlp.make_doc(_excerpt(novel))
    [whole] = component.model.predict([doc])
    [windowed] = tok2vec_predict.windowed_predict(component.model, [doc], context, window)
    assert windowed.dtype == whole.dtype and windowed.shape == whole.shape
    assert np.array_equal(windowed, whole)


def test_a_narrower_context_would_be_caught(nlp: Any) -> None:
    """The equality above is a real check: one neighbour too few changes vectors near every window edge."""
    component = nlp.get_pipe("tok2vec")
    doc = nlp.make_doc(_excerpt(NOVELS[0]))
    [whole] = component.model.predict([doc])
    [windowed] = tok2vec_predict.windowed_predict(component.model, [doc], 3, 200)
    assert not np.array_equal(windowed, whole)


def test_the_installed_pipeline_gives_booknlp_identical_tokens(nlp: Any) -> None:
    pipelines = import_upstream("booknlp.common.pipelines")
    text = _excerpt(NOVELS[-1])
    before = [str(token) for token in pipelines.SpacyPipeline(nlp).tag(text)]
    windowed = spacy.load(resolve_spacy_model(None), disable=["ner"])
    assert tok2vec_predict.install(windowed, window=300)
    assert nlp(text).tensor.tobytes() == windowed(text).tensor.tobytes()
    assert [str(token) for token in pipelines.SpacyPipeline(windowed).tag(text)] == before


def test_an_unknown_architecture_keeps_spacys_predict() -> None:
    config = {"model": {"@architectures": "spacy.Tok2Vec.v2", "embed": {"@architectures": "spacy.MultiHashEmbed.v2",
              "include_static_vectors": False}, "encode": {"@architectures": "spacy.TorchBiLSTMEncoder.v1"}}}
    assert tok2vec_predict.receptive_field(config) is None
