"""Shaping a random-weight entity tagger so its output has a plausible load for the later stages.

Straight from random initialisation the tagger's output barely depends on its input: it marks
nearly every token as an event and ~1.25 mentions per token, none of them PER, so speaker
attribution, coreference and characters see nothing like a real book. Here we run the fresh
tagger once on the bundled corpus, rescale its output layers so decisions follow the input, and
set biases for target rates: ~12% of tokens are events, ~20% start a mention (mostly people),
~25% carry a supersense. The event head is also pointed away from the ``[SEP]`` position, where
upstream's own code crashes (``IndexError``) if an event is predicted, so that upstream can be
run on these models for parity. All of this is deterministic and only touches output layers.
"""

from __future__ import annotations

import gzip
from importlib import resources
from typing import Any

import torch

from booknlp_api.models.bert import import_upstream

EVENT_RATE = 0.12
MENTION_RATE = 0.2
SUPERSENSE_RATE = 0.25
_SEP_MARGIN = 2.0
_LOGIT_SCALE = 4.0


def calibration_tokens(spacy_model: str, chars: int = 15_000) -> list[Any]:
    import spacy

    corpus = resources.files("booknlp_api.models").joinpath("data/vocab_corpus.txt.gz").read_bytes()
    text = gzip.decompress(corpus).decode("utf-8")[:chars]
    pipelines = import_upstream("booknlp.common.pipelines")
    return pipelines.SpacyPipeline(spacy.load(spacy_model, disable=["ner"])).tag(text)


class _Capture:
    """Outputs of the tagger's layers on one run, with a mask of real-token positions."""

    def __init__(self, tagger: Any) -> None:
        self.outputs: dict[str, list[torch.Tensor]] = {"flat_lstm": [], "hidden2tag1": [],
                                                        "supersense_hidden2tag1": []}
        self.lengths: list[torch.Tensor] = []
        for name in self.outputs:
            getattr(tagger, name).register_forward_hook(self._hook(name))
        original = tagger.predict_all

        def predict_all(*args: Any, **kwargs: Any) -> Any:
            self.lengths.append(kwargs["lens"].clone())
            return original(*args, **kwargs)

        tagger.predict_all = predict_all

    def _hook(self, name: str) -> Any:
        def hook(module: Any, inputs: Any, output: Any) -> None:
            self.outputs[name].append((output[0] if isinstance(output, tuple) else output).detach())
        return hook

    def positions(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows at real tokens and rows at the [SEP] position, over every batch."""
        real, sep = [], []
        for output, lengths in zip(self.outputs[name], self.lengths):
            output = output.reshape(len(lengths), -1, output.shape[-1])
            for row, length in enumerate(lengths.tolist()):
                real.append(output[row, : length - 2])
                sep.append(output[row, length - 2: length - 1])
        return torch.cat(real), torch.cat(sep)


def calibrate(entity_tagger: Any, tokens: list[Any]) -> None:
    """Adjust ``entity_tagger.model`` (an upstream ``Tagger``) in place."""
    tagger = entity_tagger.model
    capture = _Capture(tagger)
    with torch.no_grad():
        try:
            entity_tagger.tag(tokens, doEvent=True, doEntities=True, doSS=True)
        except IndexError:
            pass  # the [SEP] crash this calibration removes; every batch was seen before it
        del tagger.predict_all
        _shape_events(tagger.flat_classifier, *capture.positions("flat_lstm"))
        o_tag = tagger.tagset["O"]
        person = [tagger.tagset[f"B-{kind}_PER"] for kind in ("PROP", "NOM", "PRON")]
        _shape_tags(tagger.hidden2tag1, capture.positions("hidden2tag1")[0], o_tag, MENTION_RATE, person)
        for layer in (tagger.hidden2tag2, tagger.hidden2tag3):
            layer.weight.mul_(0.1)
            layer.bias[o_tag] += 6.0  # nested mentions are rare
        _shape_tags(tagger.supersense_hidden2tag1, capture.positions("supersense_hidden2tag1")[0],
                    tagger.supersense_tagset["O"], SUPERSENSE_RATE, [])
        tagger.crf.transitions.mul_(0.1)
        tagger.supersense_crf.transitions.mul_(0.1)


def _shape_events(classifier: torch.nn.Linear, real: torch.Tensor, sep: torch.Tensor) -> None:
    away_from_sep = real.mean(0) - sep.mean(0)
    away_from_sep /= away_from_sep.norm()
    random_part = classifier.weight[1] - classifier.weight[0]
    random_part /= random_part.norm()
    for pull in (0.0, 0.5, 1, 2, 4, 8, 16, 32, 64):
        direction = random_part + pull * away_from_sep
        scores = real @ direction
        mean, spread = scores.mean(), scores.std()
        threshold = torch.quantile((scores - mean) / spread, 1 - EVENT_RATE)
        if ((sep @ direction - mean) / spread).max() < threshold - _SEP_MARGIN:
            break
    classifier.weight.zero_()
    classifier.bias.zero_()
    classifier.weight[1] = _LOGIT_SCALE * direction / spread
    classifier.bias[1] = -_LOGIT_SCALE * (mean / spread + threshold)


def _shape_tags(layer: torch.nn.Linear, emissions: torch.Tensor, o_tag: int, rate: float,
                favoured: list[int]) -> None:
    centre, spread = emissions.mean(0), emissions.std(0).clamp_min(1e-6)
    layer.weight.div_(spread[:, None])
    layer.bias.copy_((layer.bias - centre) / spread)
    scores = (emissions - centre) / spread  # what the rescaled layer now outputs on the corpus
    for tag in favoured:
        layer.bias[tag] += 1.5
        scores[:, tag] += 1.5
    # The CRF's start and stop labels (the last two outputs) are never the answer in a trained model.
    layer.bias[-2:] -= 20.0
    scores[:, -2:] -= 20.0
    others = scores.clone()
    others[:, o_tag] = float("-inf")
    # O wins where its score beats every other tag: give it the bias that makes that the case
    # on (1 - rate) of the corpus tokens.
    layer.bias[o_tag] += torch.quantile(others.max(1).values - scores[:, o_tag], 1 - rate)
