"""Random-weight BookNLP models, built with upstream's own classes so the file format is exact.

Their output is linguistically meaningless: they exist so that the whole service can be run and
tested (and compared byte for byte with upstream) without the trained files.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import re
from collections import Counter
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import torch

from booknlp_api.config import resolve_spacy_model
from booknlp_api.models.bert import built_on_cpu, import_upstream, local_bert
from booknlp_api.models.calibrate import calibrate, calibration_tokens
from booknlp_api.models.catalog import COMPONENTS, SPECS, BertShape
from booknlp_api.models.manifest import ModelManifest, write_manifest

_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_REAL_VOCAB_SIZE = 30522
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def build_vocab(words: int, size: int | None) -> list[str]:
    """A valid uncased WordPiece vocabulary: specials, every character (bare and ``##``), then the
    ``words`` most frequent words of the bundled corpus; padded with ``[unusedN]`` up to ``size``."""
    corpus = resources.files("booknlp_api.models").joinpath("data/vocab_corpus.txt.gz").read_bytes()
    text = gzip.decompress(corpus).decode("utf-8").lower()
    counts = Counter(_WORD.findall(text))
    chars = sorted({char for token in counts for char in token})
    vocab = _SPECIAL + chars + [f"##{char}" for char in chars]
    seen = set(vocab)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    vocab += [word for word, _ in ranked if word not in seen][:words]
    if size is not None:
        vocab += [f"[unused{i}]" for i in range(size - len(vocab))]
    return vocab


def _bert_config(shape: BertShape, vocab_size: int) -> dict[str, object]:
    return {
        "architectures": ["BertForMaskedLM"], "model_type": "bert", "vocab_size": vocab_size,
        "hidden_size": shape.hidden, "num_hidden_layers": shape.layers, "num_attention_heads": shape.heads,
        "intermediate_size": 4 * shape.hidden, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512, "type_vocab_size": 2,
        "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
    }


def _tagsets() -> tuple[dict[str, int], dict[str, int]]:
    reader = import_upstream("booknlp.common.sequence_layered_reader")
    data = resources.files("booknlp.english").joinpath("data")
    return (reader.read_tagset(str(data / "entity_cat.tagset")),
            reader.read_tagset(str(data / "supersense.tagset")))


def _build_component(component: str, base_model: str) -> torch.nn.Module:
    if component == "entity":
        tagger = import_upstream("booknlp.english.tagger")
        tagset, supersense_tagset = _tagsets()
        return tagger.Tagger(freeze_bert=False, base_model=base_model, tagset_flat={"EVENT": 1, "O": 1},
                             supersense_tagset=supersense_tagset, tagset=tagset, device=torch.device("cpu"))
    if component == "quote":
        return import_upstream("booknlp.english.speaker_attribution").BERTSpeakerID(base_model=base_model)
    coref = import_upstream("booknlp.english.bert_coref_quote_pronouns")
    gender_cats = [["he", "him", "his"], ["she", "her"], ["they", "them", "their"]]
    return coref.BERTCorefTagger(gender_cats=gender_cats, freeze_bert=True, base_model=base_model)


def _calibrate_entity_file(path: Path, spacy_model: str) -> None:
    entity_tagger = import_upstream("booknlp.english.entity_tagger")
    data = resources.files("booknlp.english").joinpath("data")
    with built_on_cpu():
        tagger = entity_tagger.LitBankEntityTagger(str(path), str(data / "entity_cat.tagset"))
    calibrate(tagger, calibration_tokens(spacy_model))
    torch.save(tagger.model.state_dict(), path)


def synthesize(size: str, models_dir: Path, seed: int = 0, name: str | None = None,
               spacy_model: str | None = None, calibrated: bool = True) -> ModelManifest:
    """Write a complete model folder ``models_dir/<name or size>`` of seeded random weights.

    The entity tagger is then calibrated (see ``calibrate``) so later stages see a plausible load;
    ``calibrated=False`` keeps the raw initialisation (on which upstream's event code crashes).
    """
    spec = SPECS[size]
    model_dir = models_dir / (name or size)
    model_dir.mkdir(parents=True, exist_ok=True)
    tiny = spec.synthetic_only
    vocab = build_vocab(words=1500 if tiny else 30000, size=None if tiny else _REAL_VOCAB_SIZE)
    for shape in set(spec.shapes.values()):
        folder = model_dir / "bert" / shape.stem
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(_bert_config(shape, len(vocab)), indent=2) + "\n")
        (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")

    components: dict[str, str] = {}
    with local_bert(model_dir), _resizing_notice_hidden():
        for offset, component in enumerate(COMPONENTS):
            file_name = spec.file_name(component)
            torch.manual_seed(seed * 1000 + offset)
            module = _build_component(component, re.sub(r"\.model$", "", file_name).replace(
                "google_bert", "google/bert", 1))
            torch.save(module.state_dict(), model_dir / file_name)
            components[component] = file_name
        if calibrated:
            _calibrate_entity_file(model_dir / components["entity"], resolve_spacy_model(spacy_model))
    return write_manifest(model_dir, name or size, components, synthetic=True, source="synthesized", seed=seed)


@contextlib.contextmanager
def _resizing_notice_hidden() -> Iterator[None]:
    """Hide transformers' warning that ``resize_token_embeddings`` draws the rows it adds from the old rows' mean
    and covariance: that draw is part of the seeded synthesis (the files stay as they are), and nobody who
    synthesizes models needs to be told about it."""
    logger = logging.getLogger("transformers.modeling_utils")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
