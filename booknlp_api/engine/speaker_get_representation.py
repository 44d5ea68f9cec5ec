"""Replaces ``QuotationAttribution.get_representation`` (speaker attribution's quote windows) with the same windows
for less Python work.

Upstream grows each quote's window token by token, asking the tokenizer for the word's piece count at every
step (twice for most tokens, as the loop test and in its body), reads each token's attributes through spaCy
objects, and counts the window's pieces again word by word: ~1 s of *A Christmas Carol*'s run, 694 windows.
Here a word's piece count is computed once per distinct word, tokens' texts and paragraphs are read once per
book, and the rest is upstream's loop as it is, step for step, so the windows, candidates, their order and
errors are upstream's.
"""

from __future__ import annotations

from typing import Any

from booknlp_api.engine.speaker_get_batches import convert_word
from booknlp_api.engine.wordpiece_tokenize import MAX_ENTRIES

WINDOW = 50
"""Tokens outside quotes that a window takes on each side of its quote."""
BEFORE_PIECES, ALL_PIECES = 350, 475
"""Word pieces a window may reach going back, and in all, before it stops growing (upstream's limits)."""


class SpeakerWindows:
    """A drop-in ``get_representation`` for one ``QuotationAttribution`` instance."""

    def __init__(self, attribution: Any) -> None:
        self.attribution = attribution
        self.upstream = type(attribution).get_representation.__get__(attribution)
        self.counts: dict[str, int] = {}

    def pieces(self, word: str) -> int:
        """Word pieces of ``word`` as upstream's window sees it (lower-cased, ``[CAP]``-marked)."""
        found = self.counts.get(word)
        if found is None:
            if len(self.counts) >= MAX_ENTRIES:
                self.counts.clear()
            found = self.counts[word] = len(self.attribution.model.tokenizer.tokenize(convert_word(word)))
        return found

    def __call__(self, quotes: list[tuple[int, int]], entities: list[Any], tokens: list[Any],
                 doLowerCase: bool = True) -> tuple[list[Any], ...]:
        if not doLowerCase:
            return self.upstream(quotes, entities, tokens, doLowerCase=doLowerCase)
        text = [token.text for token in tokens]
        paragraph = [token.paragraph_id for token in tokens]
        in_quotes = [0] * len(tokens)
        end_quotes = {}
        for idx, (q_start, q_end) in enumerate(quotes):
            end_quotes[q_end] = idx
            for k in range(q_start, q_end + 1):
                in_quotes[k] = 1
        entities_by_start: dict[int, dict[int, int]] = {}
        for start, end, cat, _ in entities:
            if cat.split("_")[1] != "PER":
                continue
            entities_by_start.setdefault(start, {})[end] = 1

        out: tuple[list[Any], ...] = ([], [], [], [], [])
        for q_id, quote in enumerate(quotes):
            window = self._window(quote, text, paragraph, in_quotes, end_quotes)
            found = self._candidates(quote, window, quotes, text, paragraph, in_quotes, end_quotes, entities_by_start)
            if found is not None:
                for part, value in zip(out, (*found, q_id), strict=True):
                    part.append(value)
        return out

    def _window(self, quote: tuple[int, int], text: list[str], paragraph: list[Any], in_quotes: list[int],
                end_quotes: dict[int, int]) -> tuple[int, int]:
        """The first and one-past-last token of ``quote``'s window (upstream's two loops)."""
        end_tok = quote[1]
        start, wp_tok_count, last_par = self._grow(end_tok, -1, BEFORE_PIECES, 0, None, text, paragraph, in_quotes,
                                                   end_quotes)
        end, _, _ = self._grow(end_tok, 1, ALL_PIECES, wp_tok_count, last_par, text, paragraph, in_quotes, end_quotes)
        return start + 1, max(end - 1, end_tok + 1)

    def _grow(self, at: int, step: int, limit: int, wp_tok_count: int, last_par: Any, text: list[str],
              paragraph: list[Any], in_quotes: list[int], end_quotes: dict[int, int]) -> tuple[int, int, Any]:
        """One of upstream's two loops: from ``at``, ``step`` a token at a time while fewer than ``WINDOW`` words
        outside quotes are taken and the word pieces stay under ``limit``; where it stopped, and the counts."""
        pieces = self.pieces
        count = 0
        while (at >= 0 if step < 0 else at < len(text)) and count < WINDOW and \
                wp_tok_count + pieces(text[at]) < limit:
            if in_quotes[at] == 0:
                count += 1
                wp_tok_count += pieces(text[at])
            if at in end_quotes:
                wp_tok_count += 1
            if paragraph[at] != last_par:
                wp_tok_count += 1
            last_par = paragraph[at]
            at += step
        return at, wp_tok_count, last_par

    def _candidates(self, quote: tuple[int, int], window: tuple[int, int], quotes: list[tuple[int, int]],
                    text: list[str], paragraph: list[Any], in_quotes: list[int], end_quotes: dict[int, int],
                    entities_by_start: dict[int, dict[int, int]]) -> tuple[Any, ...] | None:
        """The window's words (quotes replaced by markers) and its 10 nearest candidates, as upstream builds
        them; None for a window without candidates (upstream leaves it out)."""
        start_tok, end_tok = quote
        start, end = window
        toks: list[str] = []
        cands: list[tuple[Any, ...]] = []
        inserts = [0] * (end - start)
        offset = 0
        reverse_map: list[int] = []
        altquote_map: dict[int, tuple[int, int]] = {}
        last_par = None
        for i in range(start, end):
            if paragraph[i] != last_par and last_par is not None:
                toks.append("[PAR]")
                reverse_map.append(i)
                offset += 1
            if not in_quotes[i]:
                toks.append(text[i])
                reverse_map.append(i)
            else:
                offset -= 1
            if i == end_tok:
                toks.append("[QUOTE]")
                reverse_map.append(i)
                offset += 1
            elif i in end_quotes:
                altquote_map[len(toks)] = quotes[end_quotes[i]]
                toks.append("[ALTQUOTE]")
                reverse_map.append(i)
                offset += 1
                q_start, q_end = quotes[end_quotes[i]]
                if q_end < end_tok:
                    # at i == start upstream reads inserts[-1], not yet written: 0
                    quotepos = i + inserts[i - start - 1] - start
                    cands.append((min(abs(q_end - start_tok), abs(q_start - end_tok)), quotepos, quotepos, None,
                                  "QUOTE", None, None))
            inserts[i - start] = offset
            last_par = paragraph[i]

        for entity_start in range(start, end):
            if entity_start in entities_by_start and in_quotes[entity_start] == 0:
                for entity_end in entities_by_start[entity_start]:
                    if entity_end < end and entity_end + inserts[entity_end - start] - start < len(toks):
                        cands.append((min(abs(entity_end - start_tok), abs(entity_start - end_tok)),
                                      entity_start + inserts[entity_start - start] - start,
                                      entity_end + inserts[entity_end - start] - start, None, "ENT", entity_start,
                                      entity_end))

        tot_toks = sum(self.pieces(tok) for tok in toks)
        if tot_toks > 500:
            raise ValueError(f"Quotation window is unexpectedly long: {tot_toks}")
        if not cands:
            return None
        labels, abs_positions, g_positions = [], [], []
        for _, s, e, eid, _, global_start, global_end in sorted(cands)[:10]:
            if " ".join(toks[s:e + 1]) == "[PAR]":
                continue
            labels.append((int(s), int(e + 1), 0, eid))
            reverse_map[s], reverse_map[e]  # upstream reads both (and uses neither): the same IndexError
            g_positions.append((global_start, global_end))
            if " ".join(toks[s:e + 1]) != "[ALTQUOTE]":
                abs_positions.append(("ENT", global_start, global_end + 1, " ".join(text[global_start:global_end + 1])))
            else:
                q_start, q_end = altquote_map[s]
                abs_positions.append(("QUOTE", q_start, q_end, " ".join(text[q_start:q_end])))
        return toks, (None, labels, toks.index("[QUOTE]")), abs_positions, g_positions
