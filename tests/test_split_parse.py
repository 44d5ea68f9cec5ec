"""Fast mode's split parse: cut at paragraph breaks, pieces parsed in forked processes, joined into one book."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from booknlp_api.config import Settings
from booknlp_api.engine.precision import FAST, FastMode
from booknlp_api.engine.service import NLPService
from booknlp_api.engine.split_parse import SplitParser, cut_points, split_parse

TEXTS = Path(__file__).parent / "fixtures" / "texts"
CHAPTER = (TEXTS / "dialogue_pride_and_prejudice_ch2.txt").read_text(encoding="utf-8")
STAVE = (TEXTS / "christmas_carol_stave1_excerpt.txt").read_text(encoding="utf-8")


def test_cuts_fall_right_after_blank_lines_near_even_shares() -> None:
    text = "One.\n\nTwo two.\n\n\nThree three three.\n \nFour."
    cuts = cut_points(text, 3)
    assert len(cuts) == 2 and cuts == sorted(set(cuts))
    for cut in cuts:
        before = text[:cut]
        gap = before[len(before.rstrip()):]
        assert gap.count("\n") >= 2 and not text[cut].isspace()
    assert cut_points(text, 1) == []
    assert cut_points("One paragraph only.\nA second line, same paragraph.", 4) == []
    assert cut_points("Ends with a break.\n\n", 2) == []  # a piece must hold a word


def _rows(tokens: list[object]) -> list[str]:
    return [str(token) for token in tokens]


def _parse(tokens: list[object]) -> list[tuple[object, ...]]:
    return [(t.pos, t.fine_pos, t.lemma, t.deprel, t.dephead) for t in tokens]  # type: ignore[attr-defined]


def _structure(tokens: list[object]) -> list[tuple[object, ...]]:
    return [(t.token_id, t.paragraph_id, t.text, t.startByte, t.endByte) for t in tokens]  # type: ignore[attr-defined]


@pytest.mark.parametrize("text", [CHAPTER, STAVE], ids=["dialogue", "stave"])
@pytest.mark.parametrize("processes", [2, 3])
def test_the_joined_book_is_the_whole_book(tiny_service: NLPService, text: str, processes: int) -> None:
    """Token ids, paragraphs, words and character offsets as one whole-book parse gives them; the parse
    itself (tags, heads, sentences) may differ near a cut only (on every benchmark novel it did not at all)."""
    pipeline = tiny_service._spacy_pipeline()
    assert len(cut_points(text, processes)) == processes - 1
    whole = pipeline.tag(text)
    split = split_parse(pipeline, text, processes)
    assert _structure(split) == _structure(whole)
    assert all(text[t.startByte:t.endByte] == t.text for t in split if t.text.isalnum())
    # a sentence split differently near a cut renumbers the sentences after it: compare the rest per token
    same = sum(a == b for a, b in zip(_parse(split), _parse(whole), strict=True))
    assert same / len(whole) >= 0.95


def test_a_text_without_paragraph_breaks_is_parsed_whole(tiny_service: NLPService) -> None:
    pipeline = tiny_service._spacy_pipeline()
    text = "Emma smiled at Harriet. She said nothing at all."
    assert _rows(SplitParser(pipeline, 2).tag(text)) == _rows(pipeline.tag(text))


def test_fast_mode_parses_split_and_writes_what_exact_writes(tiny_models_dir: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    service = NLPService(Settings(models_dir=tiny_models_dir, model="tiny"), fast_mode=FAST)
    # the worker's share of the cores caps the processes: give it two whatever this machine has
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    calls: list[int] = []
    real = SplitParser.tag

    def recording(self: SplitParser, text: str) -> list[object]:
        calls.append(self.processes)
        return real(self, text)

    monkeypatch.setattr(SplitParser, "tag", recording)
    exact = service.analyze(CHAPTER, out_dir=tmp_path / "exact")
    assert calls == []
    fast = service.analyze(CHAPTER, out_dir=tmp_path / "fast", precision="fast")
    assert calls == [2] and fast.precision == "fast"
    # the shipped fast mode has its own tagger only where it autocasts the BERTs (a CPU with native bfloat16)
    shared = service.load(precision="fast").entity is service.load(precision="exact").entity
    assert shared == (not FAST.changes_component("entity", torch.device("cpu")))
    # same tokens (paragraph, ids, word, offsets) in the .tokens file; the parse near the cut may differ
    rows = [[line.split("\t") for line in (run.folder / "book.tokens").read_text().splitlines()]
            for run in (exact, fast)]
    assert [[r[0], r[3], r[4], r[6], r[7]] for r in rows[0]] == [[r[0], r[3], r[4], r[6], r[7]] for r in rows[1]]
    assert set(fast.files) == set(exact.files)


def test_one_core_for_the_worker_means_one_whole_parse(tiny_models_dir: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    service = NLPService(Settings(models_dir=tiny_models_dir, model="tiny"), fast_mode=FastMode(parse_processes=4))
    service.load(pipeline="entity")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert not isinstance(service._parser("fast"), SplitParser)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    assert service._parser("fast").processes == 3
    assert not isinstance(service._parser("exact"), SplitParser)


def test_each_process_may_parse_its_share_in_pieces(tiny_service: NLPService, monkeypatch: pytest.MonkeyPatch) -> None:
    """One process, three pieces through ``nlp.pipe``: the same book (ids, paragraphs, words, offsets)."""
    pipeline = tiny_service._spacy_pipeline()
    piped: list[list[str]] = []
    real_pipe = pipeline.spacy_nlp.pipe

    def recording(texts: list[str], **kwargs: object) -> object:
        piped.append(list(texts))
        return real_pipe(piped[-1], **kwargs)

    monkeypatch.setattr(pipeline.spacy_nlp, "pipe", recording)
    whole = pipeline.tag(STAVE)
    split = SplitParser(pipeline, 1, 3).tag(STAVE)
    assert len(piped) == 1 and len(piped[0]) == 3 and "".join(piped[0]) == STAVE
    assert _structure(split) == _structure(whole)
    same = sum(a == b for a, b in zip(_parse(split), _parse(whole), strict=True))
    assert same / len(whole) >= 0.95
    # two processes, two pieces each: still the whole book
    assert _structure(split_parse(pipeline, STAVE, 2, 2)) == _structure(whole)


def test_fast_mode_asks_for_pieces_even_on_one_core(tiny_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    service = NLPService(Settings(models_dir=tiny_models_dir, model="tiny"),
                         fast_mode=FastMode(parse_processes=2, parse_pieces=4))
    service.load(pipeline="entity")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    parser = service._parser("fast")
    assert isinstance(parser, SplitParser) and (parser.processes, parser.pieces) == (1, 4)
    assert not isinstance(service._parser("exact"), SplitParser)
