"""Speaker-attribution and coref replacements give upstream's outputs exactly, on generated inputs.

Upstream's methods are called unbound on a small stand-in that has just what they read (a tokenizer
built the way upstream builds it, on the synthetic vocabulary), so no model has to be loaded.
"""

from __future__ import annotations

import copy
import weakref
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from booknlp_api.engine.components import upstream_data
from booknlp_api.engine.coref_get_data import CorefData
from booknlp_api.engine.lazy_batches import LazyBatches
from booknlp_api.engine.litbank_coref import make_test
from booknlp_api.engine.speaker_get_batches import SpeakerBatches
from booknlp_api.engine.speaker_get_representation import SpeakerWindows
from booknlp_api.engine.wordpiece_tokenize import RememberedTokenize, remember_tokenize
from booknlp_api.models.bert import import_upstream
from booknlp_api.models.synthesize import build_vocab

speaker_attribution = import_upstream("booknlp.english.speaker_attribution")
bert_qa = import_upstream("booknlp.english.bert_qa")
coref_module = import_upstream("booknlp.english.bert_coref_quote_pronouns")
litbank_coref = import_upstream("booknlp.english.litbank_coref")
pipelines = import_upstream("booknlp.common.pipelines")
name_coref = import_upstream("booknlp.english.name_coref")

EXAMPLES = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

WORDS = st.one_of(
    st.sampled_from(["the", "Emma", "Mr.", "don't", "Harriet", "'s", ",", "\u201c", "caf\u00e9", "Knightley",
                     "[PAR]", "[ALTQUOTE]", "said", "HE", "x", "--", "\u00e6on", "zzzqx"]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=6),
)


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(build_vocab(words=1500, size=None)) + "\n", encoding="utf-8")
    return path


def _tokenizer(vocab_file: Path, added: list[str]) -> Any:
    from transformers import BertTokenizer

    tokenizer = BertTokenizer(str(vocab_file), do_lower_case=False, do_basic_tokenize=False)
    tokenizer.add_tokens(added, special_tokens=True)
    return tokenizer


def _same(ours: Any, theirs: Any, where: str = "") -> None:
    """Equal structure; tensors equal in dtype, shape and every bit."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, torch.Tensor) and ours.dtype == theirs.dtype and ours.shape == theirs.shape, where
        assert ours.numpy().tobytes() == theirs.numpy().tobytes(), where
    elif isinstance(theirs, dict):
        assert list(ours) == list(theirs), where
        for key in theirs:
            _same(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            _same(a, b, f"{where}[{i}]")
    else:
        assert ours == theirs, where


@given(words=st.lists(WORDS | st.sampled_from(["[CAP] emma", "[QUOTE]", " ", "a b"]), max_size=30))
@EXAMPLES
def test_remembered_tokenize_is_the_tokenizers(vocab_file: Path, words: list[str]) -> None:
    tokenizer = _tokenizer(vocab_file, ["[QUOTE]", "[ALTQUOTE]", "[PAR]", "[CAP]"])
    remembered = RememberedTokenize(tokenizer.tokenize)
    for word in words + words:
        pieces = remembered(word)
        assert pieces == tokenizer.tokenize(word)
        pieces.append("mutated by a caller")
    assert remember_tokenize(tokenizer) is remember_tokenize(tokenizer)


@st.composite
def quote_windows(draw: st.DrawFn) -> tuple[list[list[str]], list[Any]]:
    texts, metas = [], []
    for _ in range(draw(st.integers(1, 7))):
        words = draw(st.lists(WORDS, min_size=1, max_size=25))
        quote = draw(st.integers(0, len(words)))
        words.insert(quote, "[QUOTE]")
        starts = draw(st.lists(st.integers(0, len(words) - 1), max_size=10))
        cands = [(start, min(len(words), start + draw(st.integers(1, 4))), 0, None) for start in starts]
        texts.append(words)
        metas.append((draw(st.sampled_from([None, 3, "e7"])), cands, quote))
    return texts, metas


@given(windows=quote_windows(), batch_size=st.integers(1, 4))
@EXAMPLES
def test_speaker_get_batches_is_upstreams(vocab_file: Path, windows: tuple[list[list[str]], list[Any]],
                                          batch_size: int) -> None:
    class Speaker:
        tokenizer = _tokenizer(vocab_file, ["[QUOTE]", "[ALTQUOTE]", "[PAR]", "[CAP]"])
        get_batches = speaker_attribution.BERTSpeakerID.get_batches
        get_wp_position_for_all_tokens = speaker_attribution.BERTSpeakerID.get_wp_position_for_all_tokens

    texts, metas = windows
    theirs = Speaker().get_batches(copy.deepcopy(texts), copy.deepcopy(metas), batch_size=batch_size)
    model = Speaker()
    remember_tokenize(model.tokenizer)
    ours = SpeakerBatches(model)
    for where in ("first call", "second call, remembered ids"):
        found = ours(texts, metas, batch_size=batch_size)
        # ours adds each window's count of real candidates (fast mode's int8 recheck reads it; upstream's
        # forward reads "cands" and "quote" only)
        counts = [batch.pop("candidates").tolist() for batch in found[1]]
        assert counts == [[len(meta[1]) for meta in metas[i:i + batch_size]] for i in range(0, len(metas), batch_size)]
        _same(found, theirs, where)


@st.composite
def quote_books(draw: st.DrawFn) -> tuple[list[Any], list[tuple[int, int]], list[tuple[int, int, str, str]]]:
    """Tokens (text, paragraph), quotes that do not overlap, and entities of every kind, some inside quotes."""
    # long enough for windows to stop at 50 words or at their word-piece limits (long words have many pieces)
    length = draw(st.integers(1, 400))
    words = draw(st.lists(WORDS | st.sampled_from(["qzqzqzqzqzqzqzqz", "Xqxqxqxqxqxq"]), min_size=length,
                          max_size=length))
    breaks = draw(st.lists(st.booleans(), min_size=length, max_size=length))
    tokens, paragraph = [], 0
    for word, new_paragraph in zip(words, breaks, strict=True):
        paragraph += new_paragraph
        tokens.append(SimpleNamespace(text=word, paragraph_id=paragraph))
    cuts = sorted(draw(st.sets(st.integers(0, length - 1), min_size=min(length, 2), max_size=24)))
    quotes = [(cuts[i], cuts[i + 1] - draw(st.integers(0, 1)) * (cuts[i + 1] > cuts[i] + 1))
              for i in range(0, len(cuts) - 1, 2)]
    entities = []
    for _ in range(draw(st.integers(0, length // 2))):
        start = draw(st.integers(0, length - 1))
        end = min(length - 1, start + draw(st.integers(0, 3)))
        cat = draw(st.sampled_from(["PROP_PER", "PRON_PER", "NOM_PER", "PROP_LOC", "NOM_FAC", "PROP_GPE"]))
        entities.append((start, end, cat, " ".join(words[start:end + 1])))
    return tokens, quotes, entities


@given(book=quote_books())
@EXAMPLES
def test_speaker_get_representation_is_upstreams(vocab_file: Path, book: tuple[Any, ...]) -> None:
    class Attribution:
        model = SimpleNamespace(tokenizer=_tokenizer(vocab_file, ["[QUOTE]", "[ALTQUOTE]", "[PAR]", "[CAP]"]))
        get_representation = bert_qa.QuotationAttribution.get_representation

    def outcome(call: Any) -> Any:
        try:
            return call(*copy.deepcopy(book))
        except ValueError as error:  # upstream's own error: an overlong window
            return ValueError, str(error)
        except Exception as error:  # a literal "[ALTQUOTE]" word as a candidate: upstream's key is a numpy int
            return type(error)

    theirs = outcome(lambda t, q, e: Attribution().get_representation(q, e, t))
    attribution = Attribution()
    remember_tokenize(attribution.model.tokenizer)
    ours = SpeakerWindows(attribution)
    for where in ("first call", "second call, remembered counts"):
        _same(outcome(lambda t, q, e: ours(q, e, t)), theirs, where)


@st.composite
def coref_docs(draw: st.DrawFn) -> tuple[list[list[str]], list[list[Any]]]:
    doc, ents = [], []
    for _ in range(draw(st.integers(0, 9))):
        words = draw(st.lists(WORDS.map(lambda w: "[CAP] " + w.lower() if w[0].lower() != w[0] else w),
                              min_size=1, max_size=20))
        sentence = ["[CLS]", *words, "[SEP]"]
        sent_ents = []
        for _ in range(draw(st.integers(0, 5))):
            start = draw(st.integers(1, len(words)))
            end = draw(st.integers(start, len(words)))
            sent_ents.append(pipelines.Entity(start, end, in_quote=draw(st.integers(0, 1))))
        doc.append(sentence)
        ents.append(sent_ents)
    return doc, ents


@given(data=coref_docs(), batchsize=st.integers(1, 4))
@EXAMPLES
def test_coref_get_data_is_upstreams(vocab_file: Path, data: tuple[list[list[str]], list[list[Any]]],
                                     batchsize: int) -> None:
    class Coref:
        tokenizer = _tokenizer(vocab_file, ["[CAP]"])
        get_data = coref_module.BERTCorefTagger.get_data
        get_matrix = coref_module.BERTCorefTagger.get_matrix
        get_mention_width_bucket = coref_module.BERTCorefTagger.get_mention_width_bucket

    doc, ents = data
    max_ents = max([len(e) for e in ents], default=0)
    max_words = max([len(s) for s in doc], default=0)
    theirs = Coref().get_data(copy.deepcopy(doc), ents, max_ents, max_words, batchsize=batchsize)
    model = Coref()
    remember_tokenize(model.tokenizer)
    ours = CorefData(model)
    first = ours(doc, ents, max_ents, max_words, batchsize=batchsize)
    second = ours(doc, ents, max_ents, max_words, batchsize=batchsize)
    for position in LAZY:
        assert isinstance(first[position], LazyBatches)
    _same(_as_lists(first), theirs)
    _same(_as_lists(second), theirs, "second call, remembered ids")
    # upstream's forward reads a batch's four large tensors in turn, batch after batch, and indexes from the end
    for b in range(-len(theirs[0]), len(theirs[0])):
        for position in LAZY:
            _same(first[position][b], theirs[position][b], f"[{position}][{b}] read by index")
    with pytest.raises(IndexError):
        first[0][len(theirs[0])]


def test_coref_get_data_holds_one_batch_at_a_time(vocab_file: Path) -> None:
    """A book's coref tensors are never all alive: reading batch b+1 frees batch b's (when no one else holds it)."""
    class Coref:
        tokenizer = _tokenizer(vocab_file, ["[CAP]"])
        get_mention_width_bucket = coref_module.BERTCorefTagger.get_mention_width_bucket

    doc = [["[CLS]", "the", "emma", "said", "[SEP]"]] * 6
    ents = [[pipelines.Entity(1, 2, in_quote=0)] for _ in doc]
    out = CorefData(Coref())(doc, ents, 1, 5, batchsize=2)
    assert len(out[0]) == 3
    first = [weakref.ref(out[position][0]) for position in LAZY]
    assert all(ref() is not None for ref in first)  # the last batch read is kept for its other tensors
    for position in LAZY:
        out[position][1]
    assert all(ref() is None for ref in first)


LAZY = (0, 7, 8, 9)
"""Positions of get_data's output built one batch at a time: mention matrix, ids, masks, transforms."""


def _as_lists(out: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(list(part) if isinstance(part, LazyBatches) else part for part in out)


NAMES = ["Emma", "Emma Woodhouse", "Miss Woodhouse", "Harriet", "Mr. Knightley", "Knightley", "she", "her",
         "the girl", "Frank", "Mr. Frank Churchill", "he"]


@st.composite
def coref_books(draw: st.DrawFn) -> dict[str, Any]:
    quotes = sorted(draw(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 8)).map(lambda q: (q[0], q[0] + q[1])),
                                  max_size=8)))
    test_ents = []
    for _ in range(draw(st.integers(1, 4))):
        sent = []
        for _ in range(draw(st.integers(0, 5))):
            start = draw(st.integers(0, 70))
            entity = pipelines.Entity(0, 1, in_quote=draw(st.integers(0, 1)), text=draw(st.sampled_from(NAMES)))
            entity.global_start, entity.global_end = start, start + draw(st.integers(0, 2))
            entity.proper = draw(st.sampled_from(["PROP", "NOM", "PRON"]))
            entity.ner_cat = draw(st.sampled_from(["PER", "LOC", "FAC"]))
            sent.append(entity)
        test_ents.append(sent)
    count = sum(len(s) for s in test_ents)
    return {"test_ents": test_ents, "quotes": quotes,
            "attributed": draw(st.lists(st.one_of(st.none(), st.integers(0, 20)), min_size=len(quotes),
                                        max_size=len(quotes))),
            "forward": draw(st.lists(st.integers(0, max(count - 1, 0)), min_size=count, max_size=count))}


@given(book=coref_books())
@EXAMPLES
def test_litbank_coref_test_is_upstreams(book: dict[str, Any]) -> None:
    class Model:
        def get_data(self, doc: Any, ents: Any, max_ents: int, max_words: int) -> tuple[Any, ...]:
            return tuple([doc] * 11)

        def forward(self, *args: Any, entities: list[Any], **kwargs: Any) -> list[int]:
            self.seen = [e.quote_mention for e in entities]
            return list(book["forward"])

    def run(test: Any, model: Model) -> tuple[Any, ...]:
        ents = copy.deepcopy(book["test_ents"])
        assignments, entities = test(["doc"], ents, 5, 5, None, {}, book["attributed"], book["quotes"])
        return assignments, [vars(e) for e in entities], model.seen

    class Coref:
        model = Model()
        test = litbank_coref.LitBankCoref.test

    upstream = Coref()
    ours = Coref()
    ours.model = Model()
    our_test = make_test(ours, name_coref.NameCoref(upstream_data("aliases.txt")))
    assert run(our_test, ours.model) == run(upstream.test, upstream.model)
