"""spaCy's ``Tok2Vec.predict`` over a whole book, a window of tokens at a time: same vectors, a fraction of the memory.

On a whole-book Doc, the tok2vec forward pass is the parse's largest transient (~16 KB per token:
six hash embeddings, maxout pieces and window expansions over every token at once; 10+ GiB for a
700K-token book). The model is local: each output row depends only on its own token's features and
on ``depth × window_size`` neighbours either side (MaxoutWindowEncoder), and every layer computes
rows independently. So the book is embedded in windows of ``WINDOW`` tokens, each widened by that
context on both sides, and only the window's own rows are kept: the vectors are bit-identical to the
whole-Doc pass (tests/test_tok2vec_predict.py, and on every benchmark novel; docs/PERFORMANCE.md).

Installed on our spaCy pipeline's tok2vec instance only (``install``); spaCy itself is untouched.
Any other architecture keeps spaCy's own ``predict``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

WINDOW = 4096
"""Tokens embedded per pass: large enough that the widening costs nothing, small enough to bound memory."""

_EMBED = "spacy.MultiHashEmbed.v2"
_ENCODE = "spacy.MaxoutWindowEncoder.v2"


def receptive_field(config: dict[str, Any]) -> int | None:
    """Neighbours either side that a tok2vec output row depends on, or None for an architecture we do not know."""
    model = config.get("model", {})
    embed, encode = model.get("embed", {}), model.get("encode", {})
    if model.get("@architectures") != "spacy.Tok2Vec.v2" or embed.get("@architectures") != _EMBED \
            or encode.get("@architectures") != _ENCODE or embed.get("include_static_vectors"):
        return None
    return int(encode["depth"]) * int(encode["window_size"])


def windowed_predict(model: Any, docs: Iterable[Any], context: int, window: int = WINDOW) -> list[np.ndarray]:
    """What ``model.predict(docs)`` returns, computed ``window`` tokens at a time with ``context`` either side."""
    extract, *embed = model.layers[0].layers
    encode = model.layers[1]
    outputs = []
    for doc in docs:
        [features] = extract.predict([doc])
        vectors = None
        for start in range(0, len(doc), window):
            end = min(len(doc), start + window)
            low, high = max(0, start - context), min(len(doc), end + context)
            part: Any = [features[low:high]]
            for layer in embed:
                part = layer.predict(part)
            [rows] = encode.predict(part)
            if vectors is None:
                vectors = model.ops.alloc2f(len(doc), rows.shape[1])
            vectors[start:end] = rows[start - low:end - low]
        outputs.append(vectors if vectors is not None else model.predict([doc])[0])
    return outputs


def install(nlp: Any, window: int = WINDOW) -> bool:
    """Make ``nlp``'s tok2vec component embed in windows; False (and nothing changed) if its model is unknown."""
    if "tok2vec" not in nlp.pipe_names:
        return False
    component = nlp.get_pipe("tok2vec")
    context = receptive_field(dict(nlp.config["components"]["tok2vec"]))
    if context is None:
        return False
    model = component.model
    original = component.predict

    def predict(docs: Iterable[Any]) -> Any:
        docs = list(docs)
        if not any(len(doc) for doc in docs):
            return original(docs)
        return windowed_predict(model, docs, context, window)

    component.predict = predict
    return True
